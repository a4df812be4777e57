"""XXH64 checksums of the manifests (dazzle.kernels.checksum).  Cost: ~0.1 s (plus compiling)."""

import numpy as np
import pytest

from dazzle.kernels.checksum import XXH64, xxh64_hex


@pytest.mark.parametrize("text, expected", [
    (b"", "ef46db3751d8e999"),
    (b"a", "d24ec4f1a98c6e5b"),
    (b"abc", "44bc2cf5ad770999"),
    (b"asdf", "415872f599cea71e"),
    (b"Call me Ishmael.", "6d04390fc9d61a90"),
    (b"Nobody inspects the spammish repetition", "fbcea83c8a378bf1"),   # a 32-byte stripe + 7
])
def test_reference_values(text, expected):
    # the published XXH64 values (seed 0)
    assert xxh64_hex(text) == expected


def test_pieces_of_any_size_give_the_checksum_of_the_whole():
    data = np.random.default_rng(5).integers(0, 256, 100_003, dtype=np.uint8).tobytes()
    whole = xxh64_hex(data)
    rng = np.random.default_rng(6)
    for _ in range(30):
        cuts = [0, *sorted(rng.integers(0, len(data), rng.integers(1, 8))), len(data)]
        h = XXH64()
        for a, b in zip(cuts[:-1], cuts[1:]):
            h.update(data[a:b])
        assert h.hexdigest() == whole
    h = XXH64()
    for i in range(0, 200, 7):          # pieces shorter than a stripe
        h.update(memoryview(data)[i:i + 7])
    assert h.hexdigest() == xxh64_hex(data[:203])
    h.update(np.frombuffer(data[203:], np.uint8))   # arrays too
    assert h.hexdigest() == whole


def test_any_change_or_cut_changes_the_checksum():
    data = bytearray(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    seen = {xxh64_hex(data)}
    for i in (0, 31, 32, 1000, 4095):
        changed = bytearray(data)
        changed[i] ^= 1
        seen.add(xxh64_hex(changed))
    for n in (4095, 4064, 4000, 1):
        seen.add(xxh64_hex(data[:n]))
    seen.add(xxh64_hex(bytes(data) + b"\0"))     # zeros appended count too
    assert len(seen) == 1 + 5 + 4 + 1
