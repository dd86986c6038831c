"""The package as ``pip install .`` makes it (not the checkout): its wheel carries the templates,
the static files and the migrations, the installed server starts and serves them, and every
library the server imports is one it installs (the quick start installs nothing else)."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

from tests.helpers import ROOT, free_port

MIGRATIONS = sorted(p.name for p in (ROOT / "storage" / "migrations" / "sqlite").glob("*.sql"))
TEMPLATES = sorted(p.name for p in (ROOT / "server" / "web" / "templates").glob("*.html"))
STATIC = sorted(p.name for p in (ROOT / "server" / "web" / "static").iterdir())


def test_the_installed_package_serves_pages_templates_and_migrations(tmp_path: Path) -> None:
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    tree = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]  # what is not ignored
    for name in subprocess.check_output(tree, cwd=ROOT, text=True).splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)]
    built = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = wheels.glob("almanac-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for folder, files in (("storage/migrations/sqlite", MIGRATIONS), ("server/web/templates", TEMPLATES),
                          ("server/web/static", STATIC)):  # fmt: skip
        assert files and all(f"{folder}/{name}" in names for name in files), (folder, files)
    # a fresh venv with the wheel installed; its dependencies come from the test venv, the
    # code only from the wheel (the server runs outside the checkout)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(python), "-c", ask], text=True).strip())
    (site / "almanac-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    where = subprocess.check_output(
        [str(python), "-c", "import server; print(server.__file__)"], text=True, cwd=tmp_path
    )
    assert str(site) in where  # the installed copy, not the checkout
    port = free_port()
    data = tmp_path / "data"
    process = subprocess.Popen(
        [str(python), "-c", "import sys; from server.cli import main; sys.exit(main())", "serve", "--port", str(port),
         "--data", str(data)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                page = urllib.request.urlopen(f"{url}/app/", timeout=2).read().decode()  # a template
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "the installed server did not start"
                time.sleep(0.2)
        assert "<form" in page and "Almanac" in page
        css = urllib.request.urlopen(f"{url}/app/static/app.css", timeout=5).read()
        assert css == (ROOT / "server" / "web" / "static" / "app.css").read_bytes()
        request = urllib.request.Request(
            f"{url}/v1/users", data=b'{"username": "pkg", "password": "correct horse"}',
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        assert urllib.request.urlopen(request, timeout=10).status == 201  # the migrations made the tables
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_every_library_the_server_imports_is_installed_with_it() -> None:
    """``./scripts/serve.sh`` installs the package without the test tools: a module of server/,
    protocol/ or storage/ importing a test tool (aiosmtpd once did) stops the quick start."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    required = {re.split(r"[<>=~!\[ ;]", line.strip())[0].lower().replace("_", "-")
                for line in setup["options"]["install_requires"].splitlines() if line.strip()}  # fmt: skip
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for folder in ("server", "protocol", "storage"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for top in {name.split(".")[0] for name in names}:
                    if top in sys.stdlib_module_names or top in ("server", "protocol", "storage"):
                        continue
                    dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
                    if not dists & required:
                        missing[f"{path.relative_to(ROOT)}: {top}"] = sorted(dists)
    assert missing == {}
