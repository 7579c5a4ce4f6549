#!/usr/bin/env python
"""Print a config as the tools see it: the defaults merged with --cfg and --set, checked and inferred.

Examples:
    python tools/print_config.py --cfg configs/shapes/e2e_faster_rcnn_R-50-FPN_shapes.yaml
    python tools/print_config.py --cfg configs/baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml --set TEST.NMS 0.6
    python tools/print_config.py --cfg ... --changed_only      # only the keys that differ from the defaults

The output is YAML (it merges back as it is); every key whose value differs from the
default ends with a comment `# changed (default: <value>)`.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from pydetectron.config import AttrDict, assert_and_infer_cfg, get_cfg
from pydetectron.engine.cli import ToolArgumentParser, run_tool
from pydetectron.engine.tool_config import tool_cfg

PROG = "print_config.py"
MARK = "# changed"


def parse_args(argv: list[str]):
    parser = ToolArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", dest="cfg_file", required=True, help="config YAML to merge over the defaults")
    parser.add_argument(
        "--set", dest="set_cfgs", nargs="+", action="extend", default=[], metavar="KEY VALUE", help="config overrides"
    )
    parser.add_argument("--changed_only", action="store_true", help="print only the keys that differ from the defaults")
    args = parser.parse_args(argv)
    if len(args.set_cfgs) % 2:
        parser.error(f"--set needs KEY VALUE pairs, got {len(args.set_cfgs)} items: {args.set_cfgs}")
    return args


def _scalar(value: Any) -> str:
    """One value as inline YAML."""
    plain = value.to_dict() if isinstance(value, AttrDict) else value
    if isinstance(plain, tuple):
        plain = list(plain)
    return yaml.safe_dump(plain, default_flow_style=True, width=10**9).strip().removesuffix("\n...").strip()


def _same(value: Any, default: Any) -> bool:
    as_list = (list, tuple)
    if isinstance(value, as_list) and isinstance(default, as_list):
        return list(value) == list(default)
    return type(value) is type(default) and value == default


def changed_keys(cfg: AttrDict, defaults: AttrDict, prefix: str = "") -> list[str]:
    """Dotted names of the leaves of `cfg` whose value differs from `defaults`."""
    keys = []
    for key, value in cfg.items():
        full = f"{prefix}{key}"
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if isinstance(value, AttrDict):
            keys += changed_keys(value, default if isinstance(default, AttrDict) else AttrDict(), full + ".")
        elif key not in defaults or not _same(value, default):
            keys.append(full)
    return keys


def format_cfg(cfg: AttrDict, defaults: AttrDict, changed_only: bool = False) -> str:
    """YAML text of `cfg`, with the changed keys marked (or only those, as dotted names)."""
    changed = set(changed_keys(cfg, defaults))
    lines: list[str] = []

    def default_of(full: str) -> Any:
        node: Any = defaults
        for part in full.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def walk(node: AttrDict, prefix: str, indent: int) -> None:
        for key, value in node.items():
            full = f"{prefix}{key}"
            if isinstance(value, AttrDict):
                if not changed_only:
                    lines.append(f"{'  ' * indent}{key}:")
                walk(value, full + ".", indent + 1)
                continue
            if changed_only and full not in changed:
                continue
            mark = f"  {MARK} (default: {_scalar(default_of(full))})" if full in changed else ""
            name = full if changed_only else f"{'  ' * indent}{key}"
            lines.append(f"{name}: {_scalar(value)}{mark}")

    walk(cfg, "", 0)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print; a user error ends with one line on stderr and exit code 2 (--debug: traceback)."""
    return run_tool(_main, argv, PROG)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    cfg = tool_cfg(args.cfg_file, set_cfgs=args.set_cfgs)
    assert_and_infer_cfg(target=cfg)
    count = len(changed_keys(cfg, get_cfg()))
    print(f"# {args.cfg_file}{' with --set ' + ' '.join(args.set_cfgs) if args.set_cfgs else ''}: "
          f"{count} keys differ from the defaults ({MARK})")  # fmt: skip
    sys.stdout.write(format_cfg(cfg, get_cfg(), args.changed_only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
