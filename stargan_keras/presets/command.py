"""`python -m stargan_keras presets`: the authors' trained models that every command takes by name.

    python -m stargan_keras presets                     # list them: size, resolution, labels, license
    python -m stargan_keras presets --fetch NAME        # download and convert one now (else on first use)

A name works wherever a model directory does: `stargan_keras.load(NAME)`, `sample`, `evaluate`,
`export --checkpoint NAME`, `tflite --saved-model NAME`, `demo --model NAME`, `train --init-from NAME`.
The first use downloads the authors' files and converts them into $STARGAN_KERAS_HOME (default
~/.cache/stargan_keras); later uses are offline. STARGAN_KERAS_MIRROR=URL fetches
URL/<name>/<file> instead of the authors' hosts; STARGAN_KERAS_OFFLINE=1 forbids downloads.
"""

from __future__ import annotations

import argparse
import sys

from stargan_keras.core.errors import command
from stargan_keras.presets.cache import cache_root, ensure, is_ready
from stargan_keras.presets.catalog import PRESETS, unknown_name_message


def table() -> str:
    rows = [("name", "family", "size", "px", "domains / attributes", "license", "cached")]
    for preset in PRESETS.values():
        facts = preset.describe()
        rows.append((preset.name, f"StarGAN {preset.family}", f"{preset.approx_bytes / 1e6:.0f} MB",
                     str(facts["resolution"]), ", ".join(facts["labels"]), preset.license,
                     "yes" if is_ready(preset.name) else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
                     for row in rows)


@command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stargan_keras presets", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--fetch", metavar="NAME", help="download and convert this preset now")
    args = parser.parse_args(argv)
    if args.fetch is not None:
        if args.fetch not in PRESETS:
            from stargan_keras.presets.cache import PresetError

            raise PresetError(unknown_name_message(args.fetch, "a preset"))
        print(ensure(PRESETS[args.fetch]))
        return 0
    print(table())
    print(f"\ncache: {cache_root()} (STARGAN_KERAS_HOME); a name works wherever a model directory does, e.g. "
          f"python -m stargan_keras.demo --model {next(iter(PRESETS))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
