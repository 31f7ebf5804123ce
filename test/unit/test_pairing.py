"""evaluation.pairing: depth and scans pair by stamp within the slop, each depth stamp once."""

from space_clip_ros.evaluation.pairing import StampPairer

MS = 1_000_000


def test_pairs_the_nearest_stamp_within_the_slop_in_either_order():
    pairer = StampPairer(slop_ns=50 * MS)
    assert pairer.add_second(996 * MS, "scan 1") is None
    assert pairer.add_first(1000 * MS, "depth 1") == (1000 * MS, "depth 1", "scan 1")
    assert pairer.add_first(1100 * MS, "depth 2") is None
    assert pairer.add_second(1200 * MS, "far scan") is None  # 100 ms from depth 2: no pair
    assert pairer.add_second(1096 * MS, "scan 2") == (1100 * MS, "depth 2", "scan 2")


def test_a_depth_stamp_is_paired_once_however_often_it_comes():
    """Issue 17, item 7: a bag played twice into a running accuracy node scored 13 of 54 frames
    twice. A repeated depth stamp is counted and dropped, whichever stream comes first."""
    pairer = StampPairer(slop_ns=50 * MS)
    first_play = [
        pairer.add_first(i * 100 * MS, f"depth {i}")
        or pairer.add_second(i * 100 * MS, f"scan {i}")
        for i in range(1, 4)
    ]
    assert [pair[0] for pair in first_play] == [100 * MS, 200 * MS, 300 * MS]
    # The bag again: scans first this time, then the same depth stamps.
    again = [
        pairer.add_second(i * 100 * MS + 4 * MS, f"scan {i}")
        or pairer.add_first(i * 100 * MS, f"depth {i}")
        for i in range(1, 4)
    ]
    assert again == [None, None, None] and pairer.duplicates == 3
    assert pairer.add_first(306 * MS, "new depth") == (306 * MS, "new depth", "scan 3")


def test_memory_of_paired_stamps_is_bounded():
    pairer = StampPairer(slop_ns=0, max_remembered=2)
    for stamp in (1, 2, 3):
        pairer.add_second(stamp, "scan")
        assert pairer.add_first(stamp, "depth") is not None
    pairer.add_second(1, "scan")
    assert pairer.add_first(1, "depth") is not None  # forgotten: only the 2 latest are kept
    assert pairer.add_first(3, "depth") is None and pairer.duplicates == 1
