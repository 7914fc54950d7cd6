"""MQTT ingestion into asset actors, against raw paho publish -> subscribe through the
same broker in the same run.

    python bench/mqtt.py [--messages N] [--samples B] [--assets K]

A mosquitto broker is started on a free loopback port. A paho publisher (QoS 1, up to
1000 messages in flight) sends N messages to K assets' ``.../measurements`` topics, each
message a JSON array of B samples ``{"ts", "values": {"T_bulk", "T_return"}}`` (2 points
per sample), as fast as it can.

- Baseline: a raw paho subscriber (QoS 1) in this process counts the messages and
  decodes each payload with msgspec (no checking, no hand-over). Its topics start with
  ``baseline/`` instead of ``twinloop/``, so the gateway does not see them.
- TwinLoop: the MqttGateway actor receives, decodes and checks every sample against the
  asset's signals, and hands batches to the asset actors (AssetActor.ingest) every
  20 ms, while the assets tick in real time (60x). Zero loss is checked at the
  assets: every published sample must have been ingested, none refused.

Rate = points delivered / (last delivery - first publish). Baseline and TwinLoop runs
alternate ``--repeats`` times (other work on the machine shifts both alike); the median
of each is reported, and Ratio = TwinLoop median / baseline median. Each sample count in
``--samples`` is measured (default 1 and 50: one sample per message shows the
per-message cost, 50 the batched throughput).
Results are merged into ``bench/results.json`` under the key ``"mqtt"``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import ray
import results_file
from ports import free_port

import plants
from actors.fleet import build_fleet
from engine.clock import ClockSpec
from engine.config import parse_site
from engine.messages import MeasurementPayload

TARGET_POINTS_PER_S = 50_000
EPOCH = time.time()



def start_broker(workdir: Path) -> tuple[subprocess.Popen, int]:
    mosquitto = shutil.which("mosquitto")
    if mosquitto is None:
        raise SystemExit("bench/mqtt.py needs mosquitto (apt-get install mosquitto)")
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                      "max_inflight_messages 1000\nmax_queued_messages 1000000\n")
    broker = subprocess.Popen([mosquitto, "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return broker, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def site_config(assets: int, audit_db: str):
    text = [f'[site]\nname = "bench"\nspeed = 60.0\naudit_db = "{audit_db}"\n']
    for i in range(1, assets + 1):
        text.append(f'[[assets]]\nid = "tank-{i:02d}"\nkind = "asphalt_tank"\n'
                    f'measurement_source = "mqtt"\nmax_measurement_age_s = 600.0\n')
    return plants.resolve_site(parse_site("\n".join(text)))


def payloads(messages: int, samples: int, assets: int) -> list[tuple[str, bytes]]:
    """(topic, payload) of every message; sample times increase per asset."""
    encoder = msgspec.json.Encoder()
    out = []
    for k in range(messages):
        asset = f"tank-{k % assets + 1:02d}"
        batch = [MeasurementPayload(ts=EPOCH + (k // assets) * samples + j,
                                    values={"T_bulk": 430.0 + 0.001 * j, "T_return": 436.0})
                 for j in range(samples)]
        out.append((f"twinloop/bench/{asset}/measurements", encoder.encode(batch)))
    return out


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, messages: list[tuple[str, bytes]]) -> float:
    """Queue every message at QoS 1; returns the wall time of the first publish."""
    started = time.perf_counter()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1)
    return started


def baseline(port: int, messages: list[tuple[str, bytes]], points: int) -> dict:
    """Raw paho publish -> subscribe with a msgspec decode per message."""
    done = threading.Event()
    count = [0, 0.0]
    decoder = msgspec.json.Decoder(list[MeasurementPayload])

    def on_message(client, userdata, message):
        decoder.decode(message.payload)
        count[0] += 1
        if count[0] == len(messages):
            count[1] = time.perf_counter()
            done.set()

    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}")
    subscriber.on_message = on_message
    subscriber.connect("127.0.0.1", port)
    subscriber.subscribe("baseline/bench/+/measurements", qos=1)
    subscriber.loop_start()
    time.sleep(0.5)
    client = publisher(port)
    started = publish_all(client, [("baseline/" + t.split("/", 1)[1], p) for t, p in messages])
    delivered = done.wait(120)
    elapsed = count[1] - started if delivered else float("nan")
    client.loop_stop()
    client.disconnect()
    subscriber.loop_stop()
    subscriber.disconnect()
    return {"messages": count[0], "lost": len(messages) - count[0], "seconds": elapsed,
            "messages_per_s": count[0] / elapsed, "points_per_s": points / elapsed}


def twinloop(port: int, fleet, messages: list[tuple[str, bytes]], samples: int, points: int
             ) -> dict:
    """The gateway actor, ingesting into the asset actors."""
    before = ray.get(fleet.mqtt.status.remote())
    expected = before["ingested"] + len(messages) * samples
    client = publisher(port)
    started = publish_all(client, messages)
    deadline = time.monotonic() + 120
    while (status := ray.get(fleet.mqtt.status.remote()))["ingested"] < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    finished = time.perf_counter()
    client.loop_stop()
    client.disconnect()
    ingested = status["ingested"] - before["ingested"]
    refused = sum(status["malformed"].values()) - sum(before["malformed"].values())
    elapsed = finished - started
    return {"messages": status["messages"] - before["messages"],
            "samples_ingested": ingested, "lost": len(messages) * samples - ingested,
            "refused": refused, "seconds": elapsed,
            "messages_per_s": len(messages) / elapsed, "points_per_s": points / elapsed}


def median_run(runs: list[dict]) -> dict:
    """The run with the median points per second."""
    return sorted(runs, key=lambda r: r["points_per_s"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--assets", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="twinloop-bench-mqtt-"))
    broker, port = start_broker(workdir)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False,
             _node_ip_address="127.0.0.1")
    results = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "load_average_1m_before": os.getloadavg()[0]},
               "broker": "mosquitto " + subprocess.run(
                   ["mosquitto", "-h"], capture_output=True, text=True).stdout.split()[2],
               "qos": 1, "assets": args.assets, "target_points_per_s": TARGET_POINTS_PER_S,
               "runs": []}
    try:
        fleet = build_fleet(site_config(args.assets, str(workdir / "audit.db")),
                            ClockSpec(speed=60.0), namespace="bench-mqtt",
                            mqtt=f"mqtt://127.0.0.1:{port}")
        assert ray.get(fleet.mqtt.wait_connected.remote(10.0))
        fleet.start()
        for samples in args.samples:
            messages = payloads(args.messages, samples, args.assets)
            points = args.messages * samples * 2
            raws, ours_all = [], []
            for _ in range(args.repeats):
                raws.append(baseline(port, messages, points))
                ours_all.append(twinloop(port, fleet, messages, samples, points))
            raw = median_run(raws)
            ours = median_run(ours_all)
            run = {"samples_per_message": samples, "points_per_message": 2 * samples,
                   "messages": args.messages, "points": points, "repeats": args.repeats,
                   "baseline": raw, "twinloop": ours,
                   "baseline_points_per_s_all": [r["points_per_s"] for r in raws],
                   "twinloop_points_per_s_all": [r["points_per_s"] for r in ours_all],
                   "ratio_points_per_s": ours["points_per_s"] / raw["points_per_s"],
                   "zero_loss": all(r["lost"] == 0 and r["refused"] == 0 for r in ours_all),
                   "meets_target": ours["points_per_s"] >= TARGET_POINTS_PER_S}
            results["runs"].append(run)
            print(f"{samples:3d} samples/message: baseline {raw['points_per_s']:9.0f} points/s "
                  f"({raw['messages_per_s']:7.0f} msg/s), twinloop {ours['points_per_s']:9.0f} "
                  f"points/s ({ours['messages_per_s']:7.0f} msg/s), ratio "
                  f"{run['ratio_points_per_s']:.2f} (medians of {args.repeats}), zero loss: "
                  f"{run['zero_loss']}", flush=True)
        ticks = [ray.get(a.status.remote())["ticks"] for a in fleet.assets.values()]
        results["asset_ticks_during_run"] = ticks
        fleet.shutdown()
    finally:
        ray.shutdown()
        broker.terminate()
        broker.wait(10)
    best = max(results["runs"], key=lambda r: r["twinloop"]["points_per_s"])
    results["points_per_s"] = best["twinloop"]["points_per_s"]
    results["meets_target"] = best["meets_target"] and best["zero_loss"]
    results_file.save("mqtt", results)
    print(f"twinloop: MQTT ingestion {results['points_per_s']:.0f} points/s at QoS 1 "
          f"(target {TARGET_POINTS_PER_S}); written to {results_file.RESULTS}")


if __name__ == "__main__":
    main()
