"""Image inputs: the host's apt sources are read, not written in, and hashes track inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import images, registry

DEB822 = """Types: deb
# a comment line
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main contrib

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main
"""
THIRD_PARTY = """Types: deb
URIs: https://vendor.example/node_20.x
Suites: nodistro
Components: main
"""
ONE_LINE = (
    "deb [signed-by=/k.gpg arch=amd64] http://old.example/debian bookworm main non-free\n# deb http://x bookworm main\n"
)


def test_host_sources_keep_only_debian_bookworm(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "vendor.sources").write_text(THIRD_PARTY)
    (tmp_path / "sources.list.d" / "disabled.sources.disabled").write_text(DEB822.replace("mirror", "other"))
    (tmp_path / "sources.list").write_text(ONE_LINE)
    found = images.host_debian_sources(tmp_path)
    assert [(s.uri, s.suites) for s in found] == [
        ("http://old.example/debian", ("bookworm",)),
        ("http://mirror.example/debian", ("bookworm", "bookworm-updates")),
        ("http://mirror.example/debian-security", ("bookworm-security",)),
    ]
    assert found[0].signed_by == "/k.gpg"
    assert all(s.components == ("main",) for s in found)


def test_rendered_sources_are_deb822(tmp_path: Path) -> None:
    sources = images.parse_deb822(DEB822)
    text = images.render_deb822(sources)
    assert images.parse_deb822(text) == sources


def test_input_hash_follows_files_and_parent(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = images.input_hash(tmp_path, "sha256:a")
    assert images.input_hash(tmp_path, "sha256:a") == first
    assert images.input_hash(tmp_path, "sha256:b") != first
    (tmp_path / "server.js").write_text("//\n")
    assert images.input_hash(tmp_path, "sha256:a") != first


def test_every_image_the_harness_builds_has_a_dockerfile() -> None:
    for name in (images.BASE, images.CAPTURE):
        assert (images.infrastructure(name).folder / "Dockerfile").is_file()
    for impl in registry.default().impls:
        assert impl.build and (impl.build_context / "Dockerfile").is_file(), impl.name


def test_manifest_and_recordings_are_not_image_inputs(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = images.input_hash(tmp_path, "sha256:a")
    (tmp_path / "impl.toml").write_text("name = 'x'\n")
    (tmp_path / "recorded").mkdir()
    (tmp_path / "recorded" / "cell.json").write_text("{}")
    assert images.input_hash(tmp_path, "sha256:a") == first


def test_build_arguments_are_image_inputs(tmp_path: Path) -> None:
    """Two variants of one family share a build context: their arguments keep them apart."""
    (tmp_path / "Dockerfile").write_text("FROM x\nARG MODULE\n")
    plain = images.input_hash(tmp_path, "sha256:a")
    openssl = images.input_hash(tmp_path, "sha256:a", (("MODULE", "openssl"),))
    gnutls = images.input_hash(tmp_path, "sha256:a", (("MODULE", "gnutls"),))
    assert len({plain, openssl, gnutls}) == 3
    assert images.input_hash(tmp_path, "sha256:a", (("MODULE", "openssl"),)) == openssl


def test_a_familys_manifests_and_fragments_are_not_image_inputs(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = images.input_hash(tmp_path, "sha256:a")
    (tmp_path / "openssl").mkdir()
    (tmp_path / "openssl" / "impl.toml").write_text("name = 'x'\n")
    (tmp_path / "openssl" / "recorded").mkdir()
    (tmp_path / "openssl" / "recorded" / "cell.json").write_text("{}")
    (tmp_path / "family.impl.toml").write_text("[server]\n")
    assert images.input_hash(tmp_path, "sha256:a") == first
    (tmp_path / "Cargo.toml").write_text("[package]\n")  # any other file is an input
    assert images.input_hash(tmp_path, "sha256:a") != first


def test_lighttpd_is_one_family_of_four_variants() -> None:
    """One lighttpd program and Dockerfile, four TLS modules picked by a build argument."""
    shipped = registry.default()
    variants = [
        impl
        for impl in shipped.impls
        if impl.build_context == registry.images_dir() / "lighttpd" and impl.generation == registry.DEFAULT_GENERATION
    ]
    assert sorted(v.name for v in variants) == [
        "lighttpd-gnutls",
        "lighttpd-mbedtls",
        "lighttpd-openssl",
        "lighttpd-wolfssl",
    ]
    for variant in variants:
        module = variant.name.removeprefix("lighttpd-")
        assert variant.build_args == (("MODULE", module),)
        assert variant.folder == registry.images_dir() / "lighttpd" / module
        assert variant.image == f"mtls-harness/{variant.name}"
    assert not list(registry.images_dir().glob("lighttpd-*"))  # no copied folder left


class _RacingEnviron(dict[str, str]):
    """An environment whose iteration meets a key deleted meanwhile, as pytest's does."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise KeyError("PYTEST_CURRENT_TEST")

    def items(self):  # type: ignore[no-untyped-def]
        raise KeyError("PYTEST_CURRENT_TEST")


def test_docker_calls_do_not_iterate_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker thread's API call must not read os.environ while pytest edits it (CI failure)."""
    import os

    import docker

    client = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41")
    images.quiet_environment(client)
    monkeypatch.setattr(os, "environ", _RacingEnviron(os.environ))
    url = "http+docker://localhost/v1.41/info"
    assert client.api.merge_environment_settings(url, {}, None, None, None)["proxies"] == {}
    client.api.trust_env = True  # what the client does unless told: the test can fail
    with pytest.raises(KeyError):
        client.api.merge_environment_settings(url, {}, None, None, None)
