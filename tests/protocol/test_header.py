"""The C++ header is the Python constants, byte for byte, and it compiles."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bluemule.protocol import constants as c
from bluemule.protocol.header import HEADER_PATH, render

ROOT = Path(__file__).resolve().parents[2]


def test_committed_header_matches_the_constants() -> None:
    committed = (ROOT / HEADER_PATH).read_text()
    assert committed == render(), "run: python -m bluemule.protocol.header --write"


def test_header_compiles_and_agrees_with_python(tmp_path: Path) -> None:
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.fail("g++ is needed to check the device header")
    probe = tmp_path / "probe.cpp"
    probe.write_text(
        '#include "bluemule_protocol.h"\n#include <cstdio>\nusing namespace bluemule::protocol;\n'
        'int main() { std::printf("%u %u %u %s\\n", (unsigned)Opcode::PART_BEGIN,'
        " (unsigned)Status::OLD_RELEASE, DEFAULT_WINDOW, DATA_UUID); }\n"
    )
    exe = tmp_path / "probe"
    subprocess.run(
        [compiler, "-std=c++17", "-I", str(ROOT / "device"), str(probe), "-o", str(exe)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == [
        str(int(c.Opcode.PART_BEGIN)),
        str(int(c.Status.OLD_RELEASE)),
        str(c.DEFAULT_WINDOW),
        c.DATA_UUID,
    ]
