"""What every cocotb testbench here shares (imported by the bench modules inside the simulator)."""

from __future__ import annotations

__all__ = ["check_start_refuses_twice"]


async def check_start_refuses_twice(tb: object) -> None:
    """A testbench owns its clock: a second ``start()`` is a bug in the test, and must say so."""
    await tb.start()  # type: ignore[attr-defined]
    try:
        await tb.start()  # type: ignore[attr-defined]
    except RuntimeError as error:
        assert "only once" in str(error), f"unexpected message: {error}"
    else:
        raise AssertionError("a second start() must raise RuntimeError")
