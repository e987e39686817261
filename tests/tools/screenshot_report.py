"""Screenshots of a real run's report.html for docs/ (headless Chromium).

Usage: python tests/tools/screenshot_report.py RUN_DIR OUT_DIR

Writes OUT_DIR/report-differences.png (the top of the page: the run, the stacks and
their versions, then the differences table). RUN_DIR holds a results.json; the report
is rendered afresh from it, so the picture is of this version's report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness import report  # noqa: E402
from harness.results import load_results  # noqa: E402


def shoot(page: Path, out: Path, height: int = 1400) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size=1400,{height}",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )


def main(run_dir: str, out_dir: str) -> int:
    document = load_results(Path(run_dir))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = Path(run_dir) / "report.html"
    report.write_html(document, page)
    shoot(page, out / "report-differences.png")
    print(f"wrote {out / 'report-differences.png'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
