"""Checks of the workspace infrastructure: the reach_core ament_python package, the environment
that scripts/env.sh activates, and ROS 2 (rclpy from the PyPI wheels) talking over real DDS.

These run under scripts/test.sh, i.e. after scripts/setup_env.sh (venv + colcon build) and with
scripts/env.sh sourced. The subprocess checks start from a scrubbed environment and source
scripts/env.sh themselves, so they test what a user's fresh shell gets.
"""
from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "reach_core"
INSTALL = ROOT / "install" / "reach_core"
BUILD = ROOT / "build" / "reach_core"

# Variables that the venv, colcon or the ROS wheels set; a "fresh shell" has none of them.
_SCRUB = {
    "VIRTUAL_ENV", "PYTHONPATH", "AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH", "CMAKE_PREFIX_PATH",
    "LD_LIBRARY_PATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE", "REACH_ENV_ACTIVE", "REACH_ROOT",
    "COLCON_DEFAULTS_FILE", "ROS_DISTRO", "ROS_VERSION", "ROS_PYTHON_VERSION",
    "RMW_IMPLEMENTATION", "ROS_AUTOMATIC_DISCOVERY_RANGE", "PYTHONHOME",
}


def fresh_shell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    # drop PATH entries that point into this workspace (venv bin, install/*/lib/*)
    env["PATH"] = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and not Path(p).resolve().is_relative_to(ROOT)
    )
    return env


def in_sourced_env(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a bash snippet after `. scripts/env.sh` in a fresh shell, from a neutral cwd."""
    cmd = f"set -euo pipefail\n. {ROOT / 'scripts' / 'env.sh'}\ncd /\n{script}"
    return subprocess.run(
        ["bash", "-c", cmd], env=fresh_shell_env(), capture_output=True, text=True,
        timeout=timeout, cwd="/",
    )


# ------------------------------------------------------------------ the package's metadata

def test_package_xml_is_a_format3_ament_python_package():
    tree = ET.parse(PKG / "package.xml")  # raises on invalid XML
    pkg = tree.getroot()
    assert pkg.tag == "package" and pkg.get("format") == "3"
    assert pkg.findtext("name") == "reach_core"
    assert pkg.findtext("export/build_type") == "ament_python"
    deps = {e.tag: set() for e in pkg}
    for e in pkg:
        deps[e.tag].add((e.text or "").strip())
    runtime = deps.get("depend", set()) | deps.get("exec_depend", set())
    assert {"python3-numpy", "python3-torch", "python3-matplotlib", "python3-tqdm"} <= runtime
    assert "python3-pytest" in deps.get("test_depend", set())
    # ROS-free: no rclpy, no message packages
    all_deps = set().union(*deps.values())
    assert not any(d.startswith("rclpy") or d.endswith("_msgs") for d in all_deps), all_deps
    assert (PKG / "resource" / "reach_core").is_file(), "ament resource index marker missing"
    # and the ROS tooling's own parser (catkin_pkg, which colcon-ros uses) accepts it
    from catkin_pkg.package import parse_package
    parsed = parse_package(str(PKG / "package.xml"))
    parsed.validate()
    assert parsed.get_build_type() == "ament_python"


def _setup_py_entry_points() -> dict:
    tree = ast.parse((PKG / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for kw in node.keywords:
                if kw.arg == "entry_points":
                    return ast.literal_eval(kw.value)
    raise AssertionError("setup.py has no setup(entry_points=...)")


def test_setup_py_declares_the_reach_console_script():
    scripts = _setup_py_entry_points()["console_scripts"]
    assert "reach = reach_core.cli:main" in [s.replace(" ", "").replace("=", " = ") for s in scripts]


def test_setup_py_does_not_require_torch():
    # an unpinned torch requirement would make `pip install -e src/reach_core` pull a CUDA build
    tree = ast.parse((PKG / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            reqs = ast.literal_eval(node.value)
            assert not any(r.split()[0].lower().startswith("torch") for r in reqs), reqs


def test_installed_distribution_exposes_the_entry_point():
    eps = importlib.metadata.entry_points(group="console_scripts", name="reach")
    assert [ep.value for ep in eps] == ["reach_core.cli:main"]
    from reach_core.cli import main
    assert callable(main)


def test_colcon_config_files_are_valid():
    meta = json.loads((ROOT / "colcon.meta").read_text())
    assert "reach_core" in meta["names"]
    import yaml  # comes with colcon
    defaults = yaml.safe_load((ROOT / "colcon_defaults.yaml").read_text())
    assert defaults["build"]["base-paths"] == ["src"]
    assert (ROOT / ".venv" / "COLCON_IGNORE").is_file(), "colcon would crawl the venv's package.xml files"


# ------------------------------------------------------------------ ROS-free science

def test_reach_core_source_never_imports_rclpy():
    offenders = []
    for path in sorted((PKG / "reach_core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in ("rclpy", "rcl_interfaces", "std_msgs",
                                                 "sensor_msgs", "geometry_msgs")]
    assert not offenders, "reach_core must stay ROS-free:\n" + "\n".join(offenders)


def test_importing_every_reach_core_module_loads_no_rclpy():
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import reach_core
        failed = []
        for m in pkgutil.iter_modules(reach_core.__path__, 'reach_core.'):
            try:
                importlib.import_module(m.name)
            except Exception as e:
                failed.append(f'{m.name}: {type(e).__name__}: {e}')
        ros = sorted(k for k in sys.modules if k.split('.')[0] in ('rclpy', 'rcl_interfaces'))
        print('ROS', ros)
        print('FAILED', failed)
        sys.exit(1 if ros or failed else 0)
    """)
    r = in_sourced_env(f"python -c {_shq(code)}")
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------ what scripts/env.sh gives

def test_env_sh_puts_reach_core_from_the_colcon_workspace_on_the_path():
    r = in_sourced_env("python -c 'import reach_core, os; print(reach_core.__file__); "
                       "print(os.path.realpath(reach_core.__file__))'")
    assert r.returncode == 0, r.stderr
    file, real = (Path(line) for line in r.stdout.split())
    if file.is_relative_to(INSTALL):
        where = "colcon install space (copy install)"
        assert real.is_relative_to(INSTALL)
    elif file.is_relative_to(BUILD):
        # colcon build --symlink-install: build/reach_core/reach_core -> src/reach_core/reach_core
        where = "source tree, through colcon's symlink install"
        assert real.is_relative_to(PKG / "reach_core"), real
    else:
        pytest.fail(f"reach_core imported from {file}, not from the colcon workspace under {ROOT}")
    print(f"reach_core resolves to the {where}: {file} -> {real}")


def test_env_sh_makes_the_reach_command_resolve():
    r = in_sourced_env("command -v reach; head -1 \"$(command -v reach)\"")
    assert r.returncode == 0, r.stderr
    where, shebang = r.stdout.splitlines()[:2]
    assert Path(where) == INSTALL / "lib" / "reach_core" / "reach"
    assert shebang.startswith("#!") and Path(shebang[2:].strip()).parent == ROOT / ".venv" / "bin"


def test_reach_help_runs():
    r = in_sourced_env("reach --help")
    assert r.returncode == 0, r.stdout + r.stderr
    for group in ("train", "eval", "render"):
        assert group in r.stdout


def test_env_sh_exposes_the_ros_underlay_and_the_package_share():
    code = ("from ament_index_python.packages import get_package_share_directory as g; "
            "print(g('reach_core')); print(g('rclpy'))")
    r = in_sourced_env(f"python -c {_shq(code)}; echo $ROS_DISTRO $ROS_AUTOMATIC_DISCOVERY_RANGE")
    assert r.returncode == 0, r.stderr
    share, rclpy_share, ros = r.stdout.splitlines()
    assert Path(share) == INSTALL / "share" / "reach_core"
    assert Path(rclpy_share).is_relative_to(ROOT / ".venv")
    assert ros == "jazzy LOCALHOST"


def _model_files() -> list[str]:
    src = PKG / "reach_core" / "models"
    if not src.is_dir():
        return []
    return sorted(str(p.relative_to(src)) for p in src.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"))


def test_a_copy_install_ships_the_package_the_script_and_the_models(tmp_path):
    """colcon build without --symlink-install into a scratch prefix: what a release would ship."""
    out = tmp_path / "ws"
    build = subprocess.run(
        ["colcon", "--log-base", str(out / "log"), "build", "--base-paths", "src",
         "--build-base", str(out / "build"), "--install-base", str(out / "install"),
         "--packages-select", "reach_core"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    prefix = out / "install" / "reach_core"
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (site / "reach_core" / "__init__.py").is_file()
    assert not (site / "reach-core.egg-link").exists(), "not a copy install"
    assert (prefix / "lib" / "reach_core" / "reach").is_file()
    assert (prefix / "share" / "reach_core" / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "reach_core").is_file()

    want = _model_files()
    share = prefix / "share" / "reach_core" / "models"
    in_share = sorted(str(p.relative_to(share)) for p in share.rglob("*") if p.is_file()) \
        if share.is_dir() else []
    assert in_share == want
    code = textwrap.dedent("""
        import importlib.resources as r, reach_core
        from pathlib import Path
        print(reach_core.__file__)
        d = r.files('reach_core') / 'models'
        print(sorted(str(p.relative_to(d)) for p in Path(str(d)).rglob('*') if p.is_file()
                     and '__pycache__' not in p.parts) if d.is_dir() else [])
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(site)), timeout=60)
    assert r.returncode == 0, r.stderr
    file, as_package_data = r.stdout.splitlines()
    assert Path(file) == site / "reach_core" / "__init__.py"
    assert ast.literal_eval(as_package_data) == want
    if not want:
        print("no trained models in src/reach_core/reach_core/models yet: checked the layout only")


# ------------------------------------------------------------------ ROS 2 over real DDS

def _domain_id(offset: int = 0) -> int:
    return (os.getpid() + offset) % 100 + 1


def test_rclpy_publisher_and_subscriber_exchange_a_message(monkeypatch, tmp_path):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(_domain_id()))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path))
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from std_msgs.msg import String

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=_domain_id(), signal_handler_options=SignalHandlerOptions.NO)
    try:
        assert ctx.get_domain_id() == _domain_id()
        talker = rclpy.create_node("reach_test_talker", context=ctx)
        listener = rclpy.create_node("reach_test_listener", context=ctx)
        got: list[str] = []
        listener.create_subscription(String, "reach_test_chatter", lambda m: got.append(m.data), 10)
        pub = talker.create_publisher(String, "reach_test_chatter", 10)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(talker)
        executor.add_node(listener)
        deadline = time.monotonic() + 10.0
        while not got and time.monotonic() < deadline:
            pub.publish(String(data="hello reach"))
            executor.spin_once(timeout_sec=0.1)
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
        assert got and got[0] == "hello reach", "no message within 10 s"
    finally:
        rclpy.shutdown(context=ctx)


def test_rclpy_two_processes_discover_each_other_over_dds(tmp_path):
    """A talker and a listener in separate processes: real DDS discovery on the loopback."""
    domain = str(_domain_id(50))
    listener = textwrap.dedent("""
        import sys, time, rclpy
        from std_msgs.msg import String
        rclpy.init()
        node = rclpy.create_node('reach_test_listener')
        got = []
        node.create_subscription(String, 'reach_test_chatter', lambda m: got.append(m.data), 10)
        print('ready', flush=True)
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        print('got', got[:1], flush=True)
        rclpy.shutdown()
        sys.exit(0 if got[:1] == ['ping'] else 1)
    """)
    talker = textwrap.dedent("""
        import time, rclpy
        from std_msgs.msg import String
        rclpy.init()
        node = rclpy.create_node('reach_test_talker')
        pub = node.create_publisher(String, 'reach_test_chatter', 10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pub.publish(String(data='ping'))
            rclpy.spin_once(node, timeout_sec=0.1)
        rclpy.shutdown()
    """)
    env = dict(os.environ, ROS_DOMAIN_ID=domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_LOG_DIR=str(tmp_path))
    lis = subprocess.Popen([sys.executable, "-c", listener], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        assert lis.stdout.readline().strip() == "ready"
        tlk = subprocess.Popen([sys.executable, "-c", talker], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            out, _ = lis.communicate(timeout=30)
        finally:
            tlk.kill()
            tlk.wait()
    finally:
        if lis.poll() is None:
            lis.kill()
            lis.wait()
    assert lis.returncode == 0, out


def _shq(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"
