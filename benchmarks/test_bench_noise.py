"""relucore-bench's noise reporting, on fake timers (no real timing): the spread of repeats, the
busy-machine check, and "noisy, rerun" instead of "NOT met" when a figure cannot be trusted."""

import functools
import itertools
import json
import time

import pytest

from relucore.bench import cli, noise, timing


def fake_clock(durations):
    """A perf_counter whose successive start/stop pairs are ``durations`` apart (then 1 ms)."""
    now = [0.0]
    steps = itertools.chain(durations, itertools.repeat(1e-3))
    pending = [None]

    def clock():
        if pending[0] is None:  # a start: remember, return now
            pending[0] = next(steps)
            return now[0]
        now[0] += pending[0]  # a stop: time has moved by the duration
        pending[0] = None
        return now[0]

    return clock


def test_spread_of_repeats():
    assert timing.spread([1.0] * 7) == 0
    assert timing.spread([1.0, 1.0, 1.0, 2.0, 1.0]) == pytest.approx(0.6)  # p90 1.6, p10 1.0, median 1
    assert timing.quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert timing.spread([0.0, 0.0]) == 0 and timing.spread([0.0, 0.0, 1.0]) == float("inf")


def test_measure_keeps_the_spread(monkeypatch):
    # every sample takes 1 ms except the fourth and fifth, which take 3 ms per call
    durations = iter([1e-3] * 3 + [3e-3] * 2 + [1e-3] * 100)
    monkeypatch.setattr(timing, "_run", lambda fn, args, number: next(durations) * number)
    monkeypatch.setattr(timing.time, "sleep", lambda s: None)
    config = timing.TimerConfig(warmup_time=0, sample_time=1e-3, min_samples=7, min_time=0, max_time=1,
                                settle_time=0)
    t = timing.measure(lambda: None, (), config)
    assert t.median == pytest.approx(1e-3) and t.samples == 7
    assert t.spread > noise.SPREAD_LIMIT  # two of seven repeats 3x slower: not a trustworthy figure


def test_quiet_machine():
    check = noise.check_machine(2, timer=fake_clock([0.010, 0.011, 0.010, 0.0105, 0.010]),
                                load=lambda: 0.3, spin=lambda: None, in_use=lambda: 0.05)
    assert not check.busy and check.spin_spread == pytest.approx(0.1)
    assert "quiet" in check.describe()
    assert "load 0.30 on 2 cores (other processes using 0.05 cores now)" in check.describe()


@pytest.mark.parametrize("durations, load, others, reason", [
    ([0.010] * 5, 2.5, 1.8, "other processes using 1.80 cores"),
    ([0.010] * 5, 0.4, 0.9, "other processes using 0.90 cores"),  # one busy process: the load lags
    ([0.010] * 5, 2.5, None, "load 2.50 >= 2 cores"),  # no /proc/stat: the load average alone
    ([0.010, 0.025, 0.010, 0.010, 0.010], 0.1, 0.0, "spin-loop times differ by 150%"),
])
def test_busy_machine(durations, load, others, reason):
    check = noise.check_machine(2, timer=fake_clock(durations), load=lambda: load, spin=lambda: None,
                                in_use=lambda: others)
    assert check.busy and reason in check.reason and "figures may be noisy" in check.describe()


def test_a_load_left_by_a_finished_process_is_not_busy():
    """The 1-minute load average stays high after a build ends: other processes using 0.1 cores just
    now make the machine quiet, and the line says so."""
    check = noise.check_machine(2, timer=fake_clock([0.01] * 5), load=lambda: 2.3, spin=lambda: None,
                                in_use=lambda: 0.1)
    assert not check.busy and check.others == pytest.approx(0.1)
    assert "load 2.30 on 2 cores (other processes using 0.10 cores now)," in check.describe()
    assert "quiet" in check.describe()


def test_cores_in_use_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"

    def write(user, system, idle, iowait):
        stat.write_text(f"cpu  {user} 0 {system} {idle} {iowait} 0 0 0 0 0\n"
                        "cpu0 1 0 1 1 0 0 0 0 0 0\ncpu1 1 0 1 1 0 0 0 0 0 0\nintr 5\n")

    write(100, 50, 1000, 10)
    assert noise.read_cpu_ticks(str(stat)) == (150, 1160, 2)
    # over the sleep: 60 busy ticks of 100 on 2 CPUs -> 1.2 cores
    got = noise.cores_in_use(0.5, ticks=lambda: noise.read_cpu_ticks(str(stat)),
                             sleep=lambda s: write(140, 70, 1038, 12))
    assert got == pytest.approx(1.2)
    assert noise.read_cpu_ticks(str(tmp_path / "missing")) is None
    assert noise.cores_in_use(0.5, ticks=lambda: None) is None


def test_no_loadavg_still_checks_the_spin_loop():
    check = noise.check_machine(2, timer=fake_clock([0.01] * 5), load=lambda: None, spin=lambda: None,
                                in_use=lambda: None)
    assert not check.busy and check.load is None and "load unknown" in check.describe()


def test_verdicts():
    assert noise.verdict(True, True) == "met"
    assert noise.verdict(False, False) == "NOT met"
    assert noise.verdict(False, True) == "noisy, rerun"
    assert noise.verdict(None, True) == "not measured"
    assert noise.noisy_spreads({"relucore": 0.05, "numpy": 0.3}, busy=False)
    assert noise.noisy_spreads({"relucore": 0.05}, busy=True)
    assert not noise.noisy_spreads({"relucore": 0.05, "copy": 0.1}, busy=False)


def _row(met, noisy):
    return {"target_pct": 90.0, "pct_of_copy_same_size": 95.0 if met else 50.0, "label": "relu out=",
            "size": "16M", "dtype": "float32", "target_met": met, "noisy": noisy}


def test_row_targets_say_noisy_instead_of_not_met():
    lines = cli.row_target_lines([_row(False, True), _row(False, False), _row(True, True),
                                  dict(_row(True, False), target_pct=None)])
    assert [line.rsplit("-> ", 1)[1] for line in lines] == ["noisy, rerun", "NOT met", "met"]


def test_suite_targets_carry_the_noise_of_their_rows():
    from relucore.bench import ufuncs

    rows = [{"op": "ufunc_relu", "dtype": "float32", "size": s, "speedup_vs_numpy": v, "noisy": n}
            for s, v, n in (("1K", 0.9, True), ("1M", 1.5, False))]
    (t,) = ufuncs.targets(rows)
    assert t["met"] is False and t["noisy"] is True
    assert noise.verdict(t["met"], t["noisy"]) == "noisy, rerun"


def _probe(in_cache, dram, llc=32 << 20):
    """A CacheProbe whose copies run at these rates (GB/s); records the sizes it was asked for."""
    asked = []

    def rate(nbytes, repeats):
        asked.append(nbytes)
        return dram if nbytes > llc else in_cache

    return noise.CacheProbe(llc, rate, settle=0), asked


def test_cache_advantage():
    probe, asked = _probe(120.0, 45.0)
    check = probe.check()
    assert asked == [64 << 20, 8 << 20]  # DRAM: arrays of twice the cache; in cache: a quarter each
    assert check.advantage == pytest.approx(120 / 45) and not check.contended
    quiet = noise.check_machine(2, timer=fake_clock([0.01] * 5), load=lambda: 0.2, spin=lambda: None, cache=check,
                                in_use=lambda: 0.0)
    assert not quiet.busy and "2.7x cache advantage" in quiet.describe()
    assert quiet.as_dict()["cache"]["advantage"] == pytest.approx(120 / 45)


def test_a_cache_in_use_elsewhere_makes_the_machine_busy():
    probe, _ = _probe(52.0, 37.0)
    check = probe.check()
    assert check.contended and check.advantage == pytest.approx(52 / 37)
    busy = noise.check_machine(2, timer=fake_clock([0.01] * 5), load=lambda: 0.2, spin=lambda: None, cache=check,
                               in_use=lambda: 0.0)
    assert busy.busy and "last-level cache is in use elsewhere" in busy.reason
    assert "1.4x a copy through DRAM" in busy.reason


def test_last_level_cache_from_sysfs(tmp_path):
    for name, level, kind, size in (("index0", 1, "Data", "48K"), ("index1", 1, "Instruction", "32K"),
                                    ("index2", 2, "Unified", "1024K"), ("index3", 3, "Unified", "32768K")):
        d = tmp_path / name
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    (tmp_path / "uevent").write_text("")
    assert noise.last_level_cache_bytes(str(tmp_path)) == 32 << 20
    assert noise.last_level_cache_bytes(str(tmp_path / "missing")) is None


def test_copy_rate_is_a_rate():
    assert 0 < noise.copy_rate(1 << 16, 3) < float("inf")


def _bench_with_cache_rates(monkeypatch, rates, llc=32 << 20, args=()):
    """relucore-bench on relu 1K (and ``args``) with the cache probe's copies at these rates (GB/s,
    in turn: the DRAM copy, then each check's) and a quiet load and spin loop."""
    rates = iter(rates)

    class Probe(noise.CacheProbe):
        def __init__(self, llc):
            super().__init__(llc, lambda nbytes, repeats: next(rates), settle=0)

    quiet = functools.partial(noise.check_machine, timer=fake_clock([0.01] * 5), load=lambda: 0.2,
                              spin=lambda: None, in_use=lambda: 0.0)
    monkeypatch.setattr(cli, "CacheProbe", Probe)
    monkeypatch.setattr(cli, "last_level_cache_bytes", lambda: llc)
    monkeypatch.setattr(cli, "check_machine", lambda cores, cache=None: quiet(cores, cache=cache))
    monkeypatch.setattr(cli, "noisy_spreads", lambda spreads, busy: busy)  # this host's own noise aside
    assert cli.main(["--quick", "--sizes", "1K", "--no-torch", "--ops", "relu", "--system-malloc", *args]) == 0


def test_rows_run_while_the_cache_is_in_use_elsewhere_are_noisy(monkeypatch, capsys):
    _bench_with_cache_rates(monkeypatch, [37.0, 120.0, 52.0, 120.0])  # quiet at the start, taken for the case
    out = capsys.readouterr().out
    assert "3.2x cache advantage -> quiet" in out
    assert "noisy (busy machine, the last-level cache in use elsewhere" in out
    assert "relu 1K" in out.split("noisy (")[1]


def test_a_cache_taken_at_the_start_only_leaves_the_rows_trusted(monkeypatch, capsys):
    _bench_with_cache_rates(monkeypatch, [37.0, 52.0, 120.0, 118.0])  # taken at the start, free for the case
    out = capsys.readouterr().out
    assert "busy (the last-level cache is in use elsewhere" in out
    assert "noisy (" not in out


@pytest.mark.parametrize("before,after", [(120.0, 90.0), (90.0, 120.0)])
def test_a_case_whose_cache_copy_slowed_is_noisy(monkeypatch, capsys, before, after):
    """A check before or after the case at 0.75x the run's fastest copy of half the cache (still
    2.4x DRAM, so not contended by the advantage rule) marks the case noisy."""
    _bench_with_cache_rates(monkeypatch, [37.0, 120.0, before, after])
    out = capsys.readouterr().out
    assert "-> quiet" in out and "noisy (" in out and "relu 1K" in out.split("noisy (")[1]


def test_cache_slowdown_is_judged_against_the_run_fastest():
    probe, _ = _probe(100.0, 40.0)
    first = probe.check()
    assert probe.best_gbps == 100.0 and not probe.slowed(first) and probe.share(first) == 1.0
    probe.rate = lambda nbytes, repeats: 130.0
    assert not probe.slowed(probe.check()) and probe.slowed(first)  # 100 < 0.85 x 130 once 130 was seen
    probe.rate = lambda nbytes, repeats: float("inf")  # a copy too quick to time is no yardstick
    assert not probe.slowed(probe.check()) and probe.best_gbps == 130.0


def test_a_cache_check_first_waits_for_spinning_threads():
    probe = noise.CacheProbe(32 << 20, lambda nbytes, repeats: 100.0, settle=0.05)
    t0 = time.perf_counter()
    probe.check()
    assert time.perf_counter() - t0 >= 0.05


def test_cache_checks_in_the_json(monkeypatch, tmp_path):
    out = tmp_path / "r.json"
    # DRAM, the start's check, the case's before and after
    _bench_with_cache_rates(monkeypatch, [37.0, 120.0, 120.0, 90.0], args=("--json", str(out)))
    (row,) = [r for r in json.loads(out.read_text())["rows"]]
    assert row["cache_advantage"] == pytest.approx(90 / 37) and row["cache_share_of_fastest"] == pytest.approx(0.75)
    assert row["noisy"]


def test_no_cache_check_where_the_dram_copy_would_fit_in_it(monkeypatch, capsys):
    _bench_with_cache_rates(monkeypatch, [], llc=1 << 30)  # no copy may run: next() would raise
    out = capsys.readouterr().out
    assert "cache advantage" not in out and "-> quiet" in out
