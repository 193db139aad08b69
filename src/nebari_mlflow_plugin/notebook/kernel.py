"""Install the "Python 3 (MLflow tracked)" kernelspec.

``python -m nebari_mlflow_plugin.notebook.kernel install [--user|--sys-prefix|--prefix P]
[--name N] [--display-name D] [--env KEY=VALUE ...]``

The kernel is the ordinary ipykernel with the capture extension in
``IPKernelApp.extensions``, so it behaves exactly like "Python 3" plus
recording; a broken tracking setup degrades to a plain kernel. Only the
standard library and jupyter_client/ipykernel are used.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

EXTENSION = "nebari_mlflow_plugin.notebook.capture"
DEFAULT_NAME = "python3-mlflow"
DISPLAY_NAME = "Python 3 (MLflow tracked)"


def kernel_json(
    extension: str = EXTENSION,
    display_name: str = DISPLAY_NAME,
    python: str | None = None,
    env: dict[str, str] | None = None,
) -> dict:
    """The kernelspec: ipykernel_launcher plus the extension, nothing else."""
    spec = {
        "argv": [
            python or sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            f"--IPKernelApp.extensions={[extension]!r}",
        ],
        "display_name": display_name,
        "language": "python",
        "metadata": {"debugger": True, "nebari_mlflow_capture": True},
    }
    if env:
        spec["env"] = env
    return spec


def install(
    name: str = DEFAULT_NAME,
    *,
    user: bool = False,
    prefix: str | None = None,
    display_name: str = DISPLAY_NAME,
    env: dict[str, str] | None = None,
) -> str:
    """Write the spec with ipykernel's logo files and register it; returns its folder."""
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / name
        try:
            from ipykernel.kernelspec import write_kernel_spec

            write_kernel_spec(str(src))  # copies the logos; kernel.json is replaced below
        except Exception:
            src.mkdir(parents=True)
        (src / "kernel.json").write_text(
            json.dumps(kernel_json(display_name=display_name, env=env), indent=1)
        )
        return KernelSpecManager().install_kernel_spec(
            str(src), kernel_name=name, user=user, prefix=prefix
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nebari_mlflow_plugin.notebook.kernel")
    sub = parser.add_subparsers(dest="cmd", required=True)
    inst = sub.add_parser("install", help=f"register the {DISPLAY_NAME!r} kernel")
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument("--sys-prefix", action="store_true", help="install into sys.prefix")
    where.add_argument("--prefix", help="install under PREFIX/share/jupyter/kernels")
    inst.add_argument("--name", default=DEFAULT_NAME)
    inst.add_argument("--display-name", default=DISPLAY_NAME)
    inst.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="env for the kernel"
    )
    sub.add_parser("spec", help="print the kernel.json that would be installed")
    args = parser.parse_args(argv)
    if args.cmd == "spec":
        print(json.dumps(kernel_json(), indent=1))
        return 0
    env = dict(item.split("=", 1) for item in args.env)
    prefix = sys.prefix if args.sys_prefix else args.prefix
    path = install(
        args.name, user=args.user, prefix=prefix, display_name=args.display_name, env=env or None
    )
    print(f"Installed kernelspec {args.name} ({args.display_name}) in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
