"""The PDF renderer runs on reportlab's C accelerators (no timing here: which code runs)."""

from reportlab.lib import rl_accel


def test_reportlab_uses_its_c_accelerators():
    # without the rl-accel package reportlab silently falls back to pure Python (half the PDF CPU)
    for name in ("fp_str", "escapePDF", "unicode2T1", "instanceStringWidthTTF"):
        assert getattr(rl_accel, name).__module__ == "_rl_accel", name
