"""Knowledge graph (issue 7): on a generated graph of ~100,000 nodes and ~500,000 relationships in the
bundled FalkorDB, time the bulk write the rebuild uses (nodes/s), search and neighbourhood expansion
(p50/p95 over the same Cypher the API sends).

    .venv/bin/python benchmarks/bench_kg.py             # ~108,000 nodes, ~500,000 relationships
    .venv/bin/python benchmarks/bench_kg.py --runs 5000 # smaller

The graph: 5 projects, 200 dataset versions, 400 designs, N runs (default 36,000) each with two
checkpoints, 40 users and 8 workers, plus the ontology. Each run has TRAINED_ON, USES_DESIGN,
IN_PROJECT, LAUNCHED_BY, RAN_ON, 5-8 APPLIES and 2 PRODUCED; a fifth are FINE_TUNED_FROM an earlier run.
Not measured here: kg_rebuild's SQL read (the write below is its graph side) and sync lag under load.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.embedded import free_port, start_bundled_redis  # noqa: E402
from kg_app import cypher  # noqa: E402
from kg_app.ontology import CONCEPTS  # noqa: E402
from kg_app.projection import GraphBatch, add_builtin_concepts, graph_write  # noqa: E402
from kg_app.schema import NODE_LABELS, node_key  # noqa: E402
from kg_app.store import get_graph_store  # noqa: E402

OPTIMIZERS = ["sgd", "adam", "adamw", "adagrad", "rmsprop"]
FAMILIES = ["mlp", "cnn", "resnet", "transformer"]
EXTRA = ["ddp", "data-parallelism", "fine-tuning", "augmentation", "learning-rate-schedule", "nccl", "gloo",
         "normalisation", "splitting", "data-cleaning"]


def generate(runs: int, seed: int = 7) -> GraphBatch:
    rng = random.Random(seed)
    batch = GraphBatch()
    add_builtin_concepts(batch)
    projects = list(range(1, 6))
    for project in projects:
        batch.node("Project", project, name=f"project {project}", project_id=project)
    for user in range(1, 41):
        batch.node("User", user, name=f"user{user}")
    for worker in range(1, 9):
        batch.node("Worker", worker, name=f"gpu{worker}@node", hostname="node", status="online")
    versions = {}
    for version in range(1, 201):
        project = projects[version % 5]
        versions[version] = project
        named = f"{project}:dataset-{version // 4}"
        key = batch.node("DatasetVersion", version, name=f"dataset-{version // 4} v{version % 4 + 1}",
                         project_id=project, object_id=version)
        batch.node("Dataset", named, name=f"dataset-{version // 4}", project_id=project)
        batch.link("DatasetVersion", key, "VERSION_OF", "Dataset", named)
        batch.link("DatasetVersion", key, "IN_PROJECT", "Project", project)
    for design in range(1, 401):
        key = batch.node("ModelDesign", design, name=f"design-{design} v1", project_id=projects[design % 5],
                         object_id=design)
        batch.link("ModelDesign", key, "IN_PROJECT", "Project", projects[design % 5])
        batch.link("ModelDesign", key, "APPLIES", "Concept", FAMILIES[design % 4])
    checkpoint = 0
    for run in range(1, runs + 1):
        version = rng.randint(1, 200)
        project = versions[version]
        key = batch.node("Run", run, name=f"run {run} {rng.choice(['baseline', 'sweep trial', 'fine-tune'])}",
                         status="succeeded", optimizer=rng.choice(OPTIMIZERS), lr=rng.random() / 10,
                         final_val_accuracy=rng.random(), project_id=project, object_id=run)
        batch.link("Run", key, "TRAINED_ON", "DatasetVersion", version)
        batch.link("Run", key, "USES_DESIGN", "ModelDesign", rng.randint(1, 400))
        batch.link("Run", key, "IN_PROJECT", "Project", project)
        batch.link("Run", key, "LAUNCHED_BY", "User", rng.randint(1, 40))
        batch.link("Run", key, "RAN_ON", "Worker", rng.randint(1, 8))
        for slug in [rng.choice(OPTIMIZERS), rng.choice(FAMILIES)] + rng.sample(EXTRA, rng.randint(3, 6)):
            batch.link("Run", key, "APPLIES", "Concept", slug)
        if run > 10 and rng.random() < 0.2:
            batch.link("Run", key, "FINE_TUNED_FROM", "Run", rng.randint(1, run - 1))
        for step in (1, 2):
            checkpoint += 1
            batch.node("Checkpoint", checkpoint, name=f"run {run} step {step}", step=step, project_id=project,
                       object_id=checkpoint, run_id=run)
            batch.link("Run", key, "PRODUCED", "Checkpoint", checkpoint)
    return batch


def timed(store, statement: str, params: dict, repeat: int) -> dict:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        store.run(statement, params, read_only=True)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50": statistics.median(samples), "p95": samples[int(len(samples) * 0.95) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=36_000)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-kg-"))
    port = free_port()
    server = start_bundled_redis(port=port, data_dir=directory, log_file=directory / "falkordb.log")
    try:
        store = get_graph_store(f"falkordb://127.0.0.1:{port}", graph_name="bench")
        store.ensure_schema(NODE_LABELS)
        batch = generate(args.runs)
        nodes = sum(map(len, batch.nodes.values()))
        relationships = sum(map(len, batch.links.values()))
        started = time.perf_counter()
        graph_write(store, batch)
        write_s = time.perf_counter() - started
        counts = store.run(cypher.COUNTS)[0]
        print(f"graph: {counts['nodes']:,} nodes, {counts['relationships']:,} relationships "
              f"(generated {nodes:,} / {relationships:,})")
        print(f"bulk write (kg_rebuild's graph side): {write_s:.1f} s = {nodes / write_s:,.0f} nodes/s, "
              f"{relationships / write_s:,.0f} relationships/s")
        member_of = {"projects": [1, 2]}
        figures = {
            "search 'trial' (2 of 5 projects)": timed(store, cypher.SEARCH, {**member_of, "query": "trial",
                                                                             "needle": "trial", "limit": 50}, args.repeat),
            "search by id (the label's key index)": timed(store, cypher.find_node("Run"),
                                                          {**member_of, "key": "run:777"}, args.repeat),
            "neighbourhood of a run (25)": timed(store, cypher.neighbourhood("Run"),
                                                 {**member_of, "key": "run:777", "skip": 0, "limit": 26}, args.repeat),
            "neighbourhood of concept adam (25 of ~7,200)": timed(
                store, cypher.neighbourhood("Concept"), {**member_of, "key": node_key("Concept", "adam"), "skip": 0,
                                                          "limit": 26}, args.repeat),
        }
        for name, figure in figures.items():
            print(f"{name:48s} p50 {figure['p50']:7.1f} ms   p95 {figure['p95']:7.1f} ms")
        search_p95 = max(figures["search 'trial' (2 of 5 projects)"]["p95"], figures["search by id (the label's key index)"]["p95"])
        neighbourhood_p95 = max(figures["neighbourhood of a run (25)"]["p95"],
                                figures["neighbourhood of concept adam (25 of ~7,200)"]["p95"])
        print(f"SUMMARY nodes={counts['nodes']} relationships={counts['relationships']} "
              f"write_nodes_per_s={nodes / write_s:.0f} search_p95_ms={search_p95:.1f} "
              f"neighbourhood_p95_ms={neighbourhood_p95:.1f} concepts={len(CONCEPTS)}")
        store.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
