"""Building and tagging the images, offline when no registry can be reached (SPEC §4).

The base has two routes that produce the same Debian image, chosen automatically: pull
``debian:<suite>-slim``; when that fails, bootstrap a root file system with ``mmdebstrap``
from the host's own apt sources and ``docker import`` it. There is one base per Debian
generation in use (bookworm for 12, the default; trixie for 13: the host's bookworm
sources with the suite renamed, the same mirror). Every other image is ``FROM`` its
generation's base (build argument BASE) and installs Debian packages only; an image of a
later generation also gets the build argument GENERATION.

Which images exist is data: the two infrastructure images (``base``, ``capture``) and
every implementation whose manifest says the harness builds it (harness.registry).
Each image is tagged ``<repository>:latest`` and ``<repository>:<hash>`` (repository
``mtls-harness/<name>`` unless its manifest names another), where the hash covers the
files of its folder (not its manifest or recorded outputs, which no image holds) and
its parent image's id: an image is rebuilt only when one of those changes.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors

from harness.errors import EnvironmentProblem, HarnessError

if TYPE_CHECKING:
    from harness.registry import Registry

REPO = "mtls-harness"
ROOTFS = f"{REPO}/rootfs"
PULL_SOURCE = "debian:bookworm-slim"
SUITE = "bookworm"
SUITES = {SUITE, f"{SUITE}-updates", f"{SUITE}-security", f"{SUITE}-backports"}
#: The images that are not implementations: the common base and the capture sidecar.
BASE = "base"
CAPTURE = "capture"
#: Files of an implementation folder that no image holds (they do not change its hash).
IMAGE_LABEL = "org.mtls-harness.image"
PULL_TIMEOUT_S = 60
BOOTSTRAP_TIMEOUT_S = 900

Say = Callable[[str], None]


@dataclass(frozen=True)
class Built:
    name: str
    tag: str
    image_id: str
    rebuilt: bool
    seconds: float


def image_ref(name: str, tag: str = "latest") -> str:
    return f"{REPO}/{name}:{tag}"


def input_hash(folder: Path, parent_id: str, args: Sequence[tuple[str, str]] = ()) -> str:
    """Hash of every file in ``folder`` (path and bytes) but manifests and recordings, the
    parent image id and the build arguments that pick a family's variant."""
    digest = hashlib.sha256(parent_id.encode())
    for name, value in args:
        digest.update(f"--build-arg {name}={value}".encode() + b"\0")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if _not_image_input(relative):
            continue
        digest.update(str(relative).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _not_image_input(relative: Path) -> bool:
    """A manifest (a variant's too, in a family's subfolder), a fragment it includes
    (``*.impl.toml``), recordings and Python's caches: read by the harness, not the image."""
    return (
        relative.name == "impl.toml"
        or relative.name.endswith(".impl.toml")
        or any(part in ("recorded", "__pycache__") for part in relative.parts)
    )


# --- host apt sources ----------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None


def parse_deb822(text: str) -> list[AptSource]:
    """The ``Types: deb`` stanzas of a deb822 ``.sources`` file."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            sources.append(
                AptSource(
                    uri,
                    tuple(fields.get("suites", "").split()),
                    tuple(fields.get("components", "").split()),
                    fields.get("signed-by"),
                )
            )
    return sources


def parse_one_line(text: str) -> list[AptSource]:
    """The ``deb`` lines of a one-line-style ``sources.list``."""
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        signed_by = None
        options = re.match(r"deb\s+\[([^\]]*)\]\s*", line)
        if options:
            for option in options.group(1).split():
                if option.startswith("signed-by="):
                    signed_by = option.split("=", 1)[1]
            line = "deb " + line[options.end() :]
        parts = line.split()
        if len(parts) >= 3:
            sources.append(AptSource(parts[1], (parts[2],), tuple(parts[3:]), signed_by))
    return sources


def host_debian_sources(etc_apt: Path = Path("/etc/apt"), suite: str = SUITE) -> list[AptSource]:
    """The host's enabled apt sources for Debian bookworm, read at run time, as sources of
    ``suite`` (trixie: the same mirrors, the suite renamed).

    Only bookworm suites are kept, so third-party repositories on the host (which
    would need keys the bootstrap does not have) never reach the image.
    """
    found: list[AptSource] = []
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            found += parse_one_line(path.read_text(errors="replace"))
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        found += parse_deb822(path.read_text(errors="replace"))
    kept = []
    for source in found:
        suites = tuple(s.replace(SUITE, suite, 1) for s in source.suites if s in SUITES)
        if suites and "main" in source.components:
            kept.append(AptSource(source.uri, suites, ("main",), source.signed_by))
    return kept


def render_deb822(sources: Iterable[AptSource]) -> str:
    stanzas = []
    for source in sources:
        lines = [
            "Types: deb",
            f"URIs: {source.uri}",
            f"Suites: {' '.join(source.suites)}",
            f"Components: {' '.join(source.components)}",
        ]
        if source.signed_by:
            lines.append(f"Signed-By: {source.signed_by}")
        stanzas.append("\n".join(lines))
    return "\n\n".join(stanzas) + "\n"


# --- building ------------------------------------------------------------------------


def connect() -> docker.DockerClient:
    """A Docker client, or one clear line saying what to do."""
    try:
        client = docker.from_env(timeout=120)
        quiet_environment(client)
        client.ping()
    except docker.errors.DockerException as exc:
        raise EnvironmentProblem(
            f"Docker is not reachable ({_first_line(exc)}): start dockerd or set DOCKER_HOST"
        ) from exc
    return client


def quiet_environment(client: docker.DockerClient) -> None:
    """Stop the client reading proxy settings from ``os.environ`` on every API call.

    The client is a requests session, and requests looks up proxies by iterating
    ``os.environ`` for each request. The matrix makes its calls from worker threads while
    pytest sets and deletes PYTEST_CURRENT_TEST around every test, and an iteration that
    meets a deleted key raises ``KeyError`` (CI saw it stop a whole matrix). Docker's
    socket is local, so no proxy applies anyway.
    """
    client.api.trust_env = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def generation_suffix(generation: str) -> str:
    """What a later generation's repositories end with: "" for the default one, "-13"."""
    from harness.registry import DEFAULT_GENERATION

    return "" if generation == DEFAULT_GENERATION else f"-{generation}"


def ensure_rootfs(client: docker.DockerClient, say: Say, generation: str | None = None) -> str:
    """The Debian root image's id for ``generation`` (the default one when None), pulling
    or bootstrapping it when missing."""
    from harness.registry import DEFAULT_GENERATION, GENERATIONS

    generation = generation or DEFAULT_GENERATION
    suite = GENERATIONS[generation]
    repository = ROOTFS + generation_suffix(generation)
    existing = _image_id(client, f"{repository}:latest")
    if existing:
        return existing
    source = f"debian:{suite}-slim"
    say(f"base route: pulling {source}")
    try:
        image = client.images.pull(source)
        image.tag(repository, "latest")
        say(f"base route: pulled {source}")
        return str(image.id)
    except docker.errors.DockerException as exc:
        say(f"base route: pull failed ({_first_line(exc)}); bootstrapping with mmdebstrap from the host's apt sources")
    return bootstrap_rootfs(client, say, generation)


def bootstrap_rootfs(client: docker.DockerClient, say: Say, generation: str | None = None) -> str:
    from harness.registry import DEFAULT_GENERATION, GENERATIONS

    generation = generation or DEFAULT_GENERATION
    suite = GENERATIONS[generation]
    repository = ROOTFS + generation_suffix(generation)
    if shutil.which("mmdebstrap") is None:
        raise EnvironmentProblem(
            f"cannot pull debian:{suite}-slim and mmdebstrap is not installed: apt-get install mmdebstrap"
        )
    sources = host_debian_sources(suite=suite)
    if not sources:
        raise EnvironmentProblem(
            f"cannot pull debian:{suite}-slim and the host's apt sources list no Debian bookworm mirror"
        )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mtls-harness-rootfs-") as tmp:
        source_file = Path(tmp) / "debian.sources"
        source_file.write_text(render_deb822(sources))
        tarball = Path(tmp) / "rootfs.tar"
        command = ["mmdebstrap", "--variant=minbase", "--quiet", suite, str(tarball), str(source_file)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=BOOTSTRAP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentProblem(f"mmdebstrap did not finish in {BOOTSTRAP_TIMEOUT_S} s") from exc
        if result.returncode != 0:
            tail = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise EnvironmentProblem(f"mmdebstrap failed (exit {result.returncode}): {tail}")
        try:
            client.api.import_image(src=str(tarball), repository=repository, tag="latest", changes=['CMD ["bash"]'])
        except docker.errors.APIError as exc:
            raise EnvironmentProblem(f"docker import of the root file system failed: {_first_line(exc)}") from exc
    image_id = _image_id(client, f"{repository}:latest")
    if image_id is None:
        raise HarnessError("docker import of the bootstrapped root file system left no image")
    say(f"base route: bootstrapped Debian {suite} with mmdebstrap in {time.monotonic() - started:.0f} s")
    return image_id


@dataclass(frozen=True)
class Recipe:
    """One image to build: its folder, and the repository its tags go to."""

    name: str
    folder: Path
    repository: str
    args: tuple[tuple[str, str], ...] = ()


def infrastructure(name: str) -> Recipe:
    from harness.registry import images_dir

    return Recipe(name, images_dir() / name, f"{REPO}/{name}")


def build_image(
    client: docker.DockerClient, recipe: Recipe, parent_id: str, parent_ref: str, rebuild: bool, say: Say
) -> Built:
    folder = recipe.folder
    if not (folder / "Dockerfile").is_file():
        raise HarnessError(f"{folder}/Dockerfile is missing")
    digest = input_hash(folder, parent_id, recipe.args)
    tag = f"{recipe.repository}:{digest}"
    started = time.monotonic()
    existing = _image_id(client, tag)
    if existing and not rebuild:
        client.images.get(tag).tag(recipe.repository, "latest")
        return Built(recipe.name, tag, existing, False, time.monotonic() - started)
    say(f"building {tag}")
    buildarg = "ROOTFS" if recipe.name.split("@")[0] == BASE else "BASE"
    log: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(folder),
            tag=tag,
            buildargs={**dict(recipe.args), buildarg: parent_ref},
            labels={IMAGE_LABEL: recipe.name, f"{IMAGE_LABEL}.inputs": digest},
            rm=True,
            forcerm=True,
            nocache=rebuild,
            decode=True,
        ):
            chunk_dict: dict[str, Any] = chunk
            if "stream" in chunk_dict:
                log.extend(str(chunk_dict["stream"]).splitlines())
            if "error" in chunk_dict:
                tail = "\n".join(log[-15:])
                raise HarnessError(f"building {tag} failed: {chunk_dict['error'].strip()}\n{tail}")
    except docker.errors.APIError as exc:
        raise HarnessError(f"building {tag} failed: {_first_line(exc)}") from exc
    image = client.images.get(tag)
    image.tag(recipe.repository, "latest")
    seconds = time.monotonic() - started
    say(f"built {tag} in {seconds:.0f} s ({int(image.attrs.get('Size') or 0) / 1e6:.0f} MB)")
    return Built(recipe.name, tag, str(image.id), True, seconds)


def ensure_images(
    client: docker.DockerClient,
    registry: Registry,
    impls: Iterable[str] | None = None,
    capture: bool = True,
    rebuild: bool = False,
    say: Say = print,
) -> dict[str, Built]:
    """Build the base, ``impls`` (all when None) and the capture image when their inputs
    changed; check that an implementation's own prebuilt image exists. Returns what is in use."""
    from harness.registry import DEFAULT_GENERATION

    names = registry.impls if impls is None else [registry.get(n) for n in dict.fromkeys(impls)]
    built: dict[str, Built] = {}
    bases: dict[str, Built] = {}

    def base_of(generation: str) -> Built:
        """The generation's base image, built once (its root file system first)."""
        if generation not in bases:
            suffix = generation_suffix(generation)
            rootfs_id = ensure_rootfs(client, say, generation)
            recipe = Recipe(BASE + suffix.replace("-", "@"), infrastructure(BASE).folder, f"{REPO}/{BASE}{suffix}")
            bases[generation] = build_image(client, recipe, rootfs_id, f"{ROOTFS}{suffix}:latest", rebuild, say)
            built[recipe.name] = bases[generation]
        return bases[generation]

    base = base_of(DEFAULT_GENERATION)
    for impl in names:
        if impl.build:
            repository = impl.image.rsplit(":", 1)[0] if ":" in impl.image.rsplit("/", 1)[-1] else impl.image
            recipe = Recipe(impl.name, impl.build_context, repository, impl.build_args)
            parent = base_of(impl.generation)
            built[impl.name] = build_image(client, recipe, parent.image_id, parent.tag, rebuild, say)
        else:
            found = _image_id(client, impl.image)
            if found is None:
                raise EnvironmentProblem(
                    f"image {impl.image} (named by {impl.folder}/impl.toml) is not on this Docker engine: "
                    "build or load it first, or give the folder a Dockerfile"
                )
            built[impl.name] = Built(impl.name, impl.image, found, False, 0.0)
    if capture:
        built[CAPTURE] = build_image(client, infrastructure(CAPTURE), base.image_id, base.tag, rebuild, say)
    return built
