"""The benchmark end to end: `python -m bench` with tiny sizes, its table and its JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT

pytestmark = pytest.mark.slow

TUTORIAL = {"grpcio", "fast-memory", "fast-sqlite", "betterproto-memory"}
OURS = {"memory": "fast-memory", "sqlite": "fast-sqlite", "ref-path": "betterproto-memory"}
FANOUT = {"fast-memory", "betterproto-memory", "grpcio-broadcast", "floor"}
CROWD = {"fast-memory", "fast-sqlite", "betterproto-memory"}
BOTH = ("bidi", "history", "unary", "unary-32", "idle")


def test_a_tiny_run_measures_every_workload_on_every_server(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    sizes = ["--messages", "300", "--rounds", "1", "--listeners", "3,4", "--idle", "5"]
    sizes += ["--crowd", "7"]
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *sizes, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio = ours / grpcio" in result.stdout
    assert "Message keys, ours only" in result.stdout
    assert "round 1/1 fast-sqlite bidi" in result.stderr  # the progress line
    assert "x floor" in result.stdout
    assert "Crowd: 7 listeners" in result.stdout

    report = json.loads(out.read_text())
    samples = {(s["target"], s["workload"]): s for s in report["samples"]}
    expected = {(t, w) for t in TUTORIAL for w in BOTH}
    expected |= {(t, f"fanout-{n}") for t in FANOUT for n in (3, 4)}
    expected |= {("fast-signed", "unary"), ("fast-signed", "unary-32")}
    expected |= {(target, "bidi-keyed") for target in OURS.values()}
    expected |= {(target, "crowd") for target in CROWD}
    assert set(samples) == expected
    for (target, workload), sample in samples.items():
        assert sample["wall_s"] > 0, (target, workload)
        assert sample["cpu_s"] >= 0, (target, workload)
        assert sample["rss_after_kib"] > 10_000, (target, workload)
    for target in TUTORIAL:  # 300 messages cost far more than one 10 ms clock tick
        assert samples[target, "bidi"]["cpu_s"] > 0
        assert samples[target, "unary-32"]["cpu_s"] > 0
        assert samples[target, "bidi"]["count"] == 300
        assert samples[target, "history"]["count"] == 300 + 100  # and the warm-up's
        assert samples[target, "unary"]["count"] == 75
        assert samples[target, "idle"]["count"] == 5
    for target in FANOUT:
        fanout = samples[target, "fanout-3"]
        assert fanout["count"] == 100 * 3  # 300 deliveries, as --messages says
        assert samples[target, "fanout-4"]["count"] == 75 * 4
        assert 0 < fanout["extra"]["latency_p50_ms"] <= fanout["extra"]["latency_p99_ms"]
    for target in CROWD:  # 100 messages/s for the quick run's 1 s, to 7 listeners
        crowd = samples[target, "crowd"]
        assert crowd["count"] == 100 * 7
        assert crowd["extra"]["cut_off"] == 0
        assert 0 < crowd["extra"]["latency_p50_ms"] <= crowd["extra"]["latency_p99_ms"]
    assert {row["server"] for row in report["crowd"]} == {"fast", "fast-sqlite", "ref-path"}
    rows = {(row["workload"], row["store"]) for row in report["comparisons"]}
    assert rows == {(w, s) for w in BOTH[:4] for s in OURS}
    servers = [(fan["listeners"], fan["server"]) for fan in report["fanout"]]
    assert servers == [(n, s) for n in (3, 4) for s in ("fast", "ref-path", "grpcio", "floor")]
    assert set(report["idle_kib_per_stream"]) == TUTORIAL
    assert [row["workload"] for row in report["signed"]] == ["unary", "unary-32"]
    assert all(row["signed_cpu_us"] > 0 for row in report["signed"])
    assert samples["fast-signed", "unary"]["count"] == 75
    assert "Signed tokens, ours only" in result.stdout
    assert set(report["key_cost_us"]) == set(OURS)
    for target in OURS.values():
        assert samples[target, "bidi-keyed"]["count"] == 300
        assert samples[target, "bidi-keyed"]["cpu_s"] > 0
    assert report["machine"]["cores"] >= 1
    assert set(report["machine"]["packages"]) >= {"grpclib", "betterproto", "grpcio"}


def test_a_size_below_one_is_refused_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--rounds", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith("every size must be at least 1")
    assert result.stdout == ""


def test_a_tiny_scale_run_measures_one_and_two_replicas_on_redis(
    tmp_path: Path, redis_server: object
) -> None:
    """`redis_server` only checks that redis-server is there (the run starts its own)."""
    out = tmp_path / "scale.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "--messages", "200", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "Redis CPU us/msg" in result.stdout
    samples = json.loads(out.read_text())["scale"]
    assert [sample["replicas"] for sample in samples] == [1, 2]
    for sample in samples:
        assert sample["messages"] == 200
        # every listener and writer got every message (a CHAT, or its own ACK)
        assert sample["deliveries"] == 200 * (10 + 2) * sample["replicas"]
        assert sample["redis_cpu_s"] > 0 and sample["messages_per_s"] > 0
        assert sample["presence_updates_per_message"] == 0  # posting makes no presence trips


def test_idle_streams_alone_are_measured_on_a_fresh_server_of_each_path() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.idle", "--streams", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "60 idle SendAndReceiveMessage streams on a fresh server"
    rows = dict(line.split() for line in lines[2:])
    assert list(rows) == ["fast", "reference"]
    assert all(float(kib) > -100 for kib in rows.values())  # RSS may even shrink a little


def test_idle_streams_below_one_are_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.idle", "--streams", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith("--streams must be at least 1")
