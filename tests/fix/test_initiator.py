#!/usr/bin/env python3
"""End-to-end check of fix_acceptor.py with a small QuickFIX/Python initiator.

By default it starts the acceptor itself (waiting for its "READY <port>" line, no
sleeps) in a fresh temp directory and runs two scenarios:

  basic : 3 orders -- SPY full fill (OrderQty), QQQ CashOrderQty in 3 partial
          fills, BADSYM rejected -- then a resting limit order that is cancelled
          (39=4) and cancelled again (35=9), and a RequestForPositions (AO + AP).
  drop  : acceptor started with --drop-after-orders 1; the connection drops after
          the first New report; the test sends a second order while disconnected;
          after automatic reconnect the gap is filled both ways (fills arrive with
          PossDupFlag=Y, the queued order reaches the broker as a PossDup resend).

Both scenarios finally assert from the acceptor's orders log that no ClOrdID was
received twice without PossDupFlag=Y.  Exit code 0 = all checks passed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import quickfix as fix
import quickfix44 as fix44

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 15.0


def utc_ts():
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


class Client(fix.Application):
    def __init__(self):
        super().__init__()
        self.cv = threading.Condition()
        self.reports = defaultdict(list)   # ClOrdID -> [dict]
        self.cxl_rejects = defaultdict(list)
        self.pos_acks, self.pos_reports = [], []
        self.logons = 0
        self.logouts = 0
        self.session_id = None

    def onCreate(self, sid):
        self.session_id = sid

    def onLogon(self, sid):
        with self.cv:
            self.logons += 1
            self.cv.notify_all()

    def onLogout(self, sid):
        with self.cv:
            self.logouts += 1
            self.cv.notify_all()

    def toAdmin(self, msg, sid):
        pass

    def fromAdmin(self, msg, sid):
        pass

    def toApp(self, msg, sid):
        pass

    def fromApp(self, msg, sid):
        hdr = msg.getHeader()
        mt = hdr.getField(35)
        d = {str(t): msg.getField(t) for t in (1, 6, 11, 14, 17, 31, 32, 37, 38, 39, 41, 55, 58, 102, 103, 150, 151, 152,
                                          434, 710, 721, 727, 728, 729, 730) if msg.isSetField(t)}
        d["poss_dup"] = hdr.isSetField(43) and hdr.getField(43) == "Y"
        with self.cv:
            if mt == "8":
                self.reports[d.get("11")].append(d)
            elif mt == "9":
                self.cxl_rejects[d.get("11")].append(d)
            elif mt == "AO":
                self.pos_acks.append(d)
            elif mt == "AP":
                grp = fix44.PositionReport.NoPositions()
                n = int(msg.getField(702)) if msg.isSetField(702) else 0
                d["positions"] = []
                for i in range(1, n + 1):
                    msg.getGroup(i, grp)
                    d["positions"].append({str(t): grp.getField(t) for t in (703, 704, 705) if grp.isSetField(t)})
                self.pos_reports.append(d)
            self.cv.notify_all()

    def wait(self, pred, what, timeout=TIMEOUT):
        with self.cv:
            if not self.cv.wait_for(pred, timeout):
                raise AssertionError(f"timeout waiting for {what}")

    def send(self, msg):
        fix.Session.sendToTarget(msg, self.session_id)


def new_order(clid, symbol, side="1", qty=None, cash=None, ord_type="1", price=None, extra=None):
    m = fix44.NewOrderSingle()
    m.setField(fix.StringField(11, clid))
    m.setField(fix.StringField(1, "TEST-ACCOUNT"))
    m.setField(fix.StringField(55, symbol))
    m.setField(fix.CharField(54, side))
    m.setField(fix.StringField(60, utc_ts()))
    if qty is not None:
        m.setField(fix.StringField(38, str(qty)))
    if cash is not None:
        m.setField(fix.StringField(152, str(cash)))
    m.setField(fix.CharField(40, ord_type))
    if price is not None:
        m.setField(fix.StringField(44, str(price)))
    m.setField(fix.CharField(59, "0"))
    for tag, val in (extra or {}).items():
        m.setField(fix.StringField(tag, val))
    return m


def cancel(clid, orig, symbol, side="1", qty="1"):
    m = fix44.OrderCancelRequest()
    m.setField(fix.StringField(41, orig))
    m.setField(fix.StringField(11, clid))
    m.setField(fix.StringField(55, symbol))
    m.setField(fix.CharField(54, side))
    m.setField(fix.StringField(38, qty))
    m.setField(fix.StringField(60, utc_ts()))
    return m


def request_positions(req_id):
    m = fix44.RequestForPositions()
    m.setField(fix.StringField(710, req_id))
    m.setField(fix.IntField(724, 0))
    m.setField(fix.StringField(1, "TEST-ACCOUNT"))
    m.setField(fix.IntField(581, 1))
    m.setField(fix.StringField(715, datetime.now(timezone.utc).strftime("%Y%m%d")))
    m.setField(fix.StringField(60, utc_ts()))
    return m


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print(f"  ok: {msg}")


def check_fill_sequence(reps, expect_qty, expect_px, expect_fills):
    """reps: execution reports of one ClOrdID, in arrival order."""
    new = [r for r in reps if r.get("150") == "0"]
    fills = [r for r in reps if r.get("150") == "F"]
    check(len(new) == 1 and new[0]["39"] == "0", "one New report (39=0,150=0)")
    check(len(fills) == expect_fills, f"{expect_fills} fill report(s)")
    exec_ids = [r["17"] for r in reps]
    check(len(set(exec_ids)) == len(exec_ids), "ExecIDs unique")
    cum = Decimal(0)
    notional = Decimal(0)
    for i, r in enumerate(fills):
        last = Decimal(r["32"])
        cum += last
        notional += last * Decimal(r["31"])
        check(Decimal(r["14"]) == cum, f"fill {i + 1}: CumQty {r['14']} == running sum")
        check(Decimal(r["151"]) == Decimal(expect_qty) - cum, f"fill {i + 1}: LeavesQty {r['151']}")
        check(abs(Decimal(r["6"]) - notional / cum) < Decimal("0.000001"), f"fill {i + 1}: AvgPx {r['6']}")
        check(r["39"] == ("2" if i == len(fills) - 1 else "1"), f"fill {i + 1}: OrdStatus {r['39']}")
        check(Decimal(r["31"]) == Decimal(expect_px), f"fill {i + 1}: LastPx {r['31']}")
    check(cum == Decimal(expect_qty), f"total filled {cum} == {expect_qty}")


def check_orders_log(path):
    counts = defaultdict(lambda: [0, 0])
    with open(path) as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("msg_type") == "D":
                c = counts[rec["cl_ord_id"]]
                c[0] += 1
                c[1] += 0 if rec["poss_dup"] else 1
    dups = {k: v for k, v in counts.items() if v[1] > 1}
    check(not dups, f"orders log: {len(counts)} ClOrdIDs, none received twice without PossDup ({dict(counts)})")
    return counts


def start_acceptor(workdir, extra_args):
    prices = os.path.join(workdir, "prices.json")
    with open(prices, "w") as fh:
        json.dump({"SPY": "580.12", "QQQ": "500", "IWM": "200", "AAPL": "230.5"}, fh)
    positions = os.path.join(workdir, "positions.json")
    with open(positions, "w") as fh:
        json.dump({"SPY": "5", "TLT": {"long": "12", "short": "0", "price": "91.3"}}, fh)
    cmd = [sys.executable, os.path.join(HERE, "fix_acceptor.py"), "--port", "0",
           "--sender-comp-id", "BROKER", "--target-comp-id", "REBAL",
           "--store-dir", os.path.join(workdir, "acceptor-store"),
           "--orders-log", os.path.join(workdir, "orders.jsonl"),
           "--prices", prices, "--positions", positions,
           "--reject-symbols", "BADSYM", "--partial-fills-symbol", "QQQ=3"] + extra_args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()  # blocks until the acceptor is listening
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"acceptor did not start: {line!r}")
    return proc, int(line.split()[1]), os.path.join(workdir, "orders.jsonl")


def start_initiator(workdir, port):
    cfg = os.path.join(workdir, "initiator.cfg")
    dd = os.path.join(sys.prefix, "share", "quickfix", "FIX44.xml")
    with open(cfg, "w") as fh:
        fh.write(f"""[DEFAULT]
ConnectionType=initiator
ReconnectInterval=1
FileStorePath={workdir}/initiator-store
FileLogPath={workdir}/initiator-log
StartTime=00:00:00
EndTime=00:00:00
HeartBtInt=5
UseDataDictionary=Y
DataDictionary={dd}
ValidateUserDefinedFields=N
ResetOnLogon=N
ResetOnDisconnect=N

[SESSION]
BeginString=FIX.4.4
SenderCompID=REBAL
TargetCompID=BROKER
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
""")
    settings = fix.SessionSettings(cfg)
    app = Client()
    ini = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    ini.start()
    app.wait(lambda: app.logons >= 1, "logon")
    return app, ini


def scenario_basic(workdir):
    print("scenario basic")
    proc, port, orders_log = start_acceptor(workdir, [])
    try:
        app, ini = start_initiator(workdir, port)
        check(True, f"logged on to acceptor on port {port}")
        app.send(new_order("C-SPY-1", "SPY", qty=10, extra={5555: "Y"}))   # 5555: stand-in extended-hours tag
        app.send(new_order("C-QQQ-1", "QQQ", cash="1000"))
        app.send(new_order("C-BAD-1", "BADSYM", qty=1))

        def done(clid, final):
            return lambda: any(r["39"] == final for r in app.reports[clid])
        app.wait(done("C-SPY-1", "2"), "SPY filled")
        app.wait(done("C-QQQ-1", "2"), "QQQ filled")
        app.wait(done("C-BAD-1", "8"), "BADSYM rejected")

        print(" SPY (OrderQty=10, one full fill)")
        check_fill_sequence(app.reports["C-SPY-1"], "10", "580.12", 1)
        print(" QQQ (CashOrderQty=1000 @500 -> 2 shares, 3 partial fills)")
        check_fill_sequence(app.reports["C-QQQ-1"], "2", "500", 3)
        print(" BADSYM")
        bad = app.reports["C-BAD-1"]
        check(len(bad) == 1 and bad[0]["150"] == "8" and bad[0]["39"] == "8" and "58" in bad[0],
              f"rejected with 39=8,150=8, Text={bad[0].get('58')!r}")

        print(" resting limit order + cancel")
        app.send(new_order("C-IWM-1", "IWM", qty=3, ord_type="2", price="1.00"))
        app.wait(lambda: any(r["39"] == "0" for r in app.reports["C-IWM-1"]), "IWM New")
        app.send(cancel("X-IWM-1", "C-IWM-1", "IWM", qty="3"))
        app.wait(lambda: any(r["39"] == "4" for r in app.reports["X-IWM-1"]), "IWM canceled")
        c = app.reports["X-IWM-1"][-1]
        check(c["150"] == "4" and c["41"] == "C-IWM-1" and c["151"] == "0", "cancel -> 39=4,150=4, OrigClOrdID echoed")
        app.send(cancel("X-IWM-2", "C-IWM-1", "IWM", qty="3"))
        app.wait(lambda: app.cxl_rejects["X-IWM-2"], "cancel reject")
        cr = app.cxl_rejects["X-IWM-2"][0]
        check(cr["39"] == "4" and cr["434"] == "1", f"second cancel -> 35=9 (OrdStatus={cr['39']}, Text={cr.get('58')!r})")

        print(" duplicate ClOrdID (no PossDup)")
        app.send(new_order("C-SPY-1", "SPY", qty=1))
        app.wait(lambda: any(r["39"] == "8" for r in app.reports["C-SPY-1"]), "duplicate rejected")
        check(app.reports["C-SPY-1"][-1].get("103") == "6", "duplicate ClOrdID rejected with OrdRejReason=6")

        print(" RequestForPositions")
        app.send(request_positions("POS-1"))
        app.wait(lambda: app.pos_acks and len(app.pos_reports) >= int(app.pos_acks[0]["727"]), "position reports")
        pos = {r["55"] if "55" in r else None: r for r in app.pos_reports}
        check(app.pos_acks[0]["728"] == "0", f"AO ack, {app.pos_acks[0]['727']} reports announced")
        got = {}
        for r in app.pos_reports:
            p = r["positions"][0]
            got[r.get("55", "?")] = Decimal(p.get("704", "0")) - Decimal(p.get("705", "0"))
        check(got.get("SPY") == Decimal(15) and got.get("QQQ") == Decimal(2) and got.get("TLT") == Decimal(12),
              f"positions SPY=5+10, QQQ=2, TLT=12 -> {dict((k, str(v)) for k, v in got.items())}")

        print(" orders log")
        # the duplicate C-SPY-1 above was sent on purpose without PossDup; account for it
        counts = defaultdict(lambda: [0, 0])
        with open(orders_log) as fh:
            for line in fh:
                rec = json.loads(line)
                if rec.get("msg_type") == "D":
                    counts[rec["cl_ord_id"]][0] += 1
                    counts[rec["cl_ord_id"]][1] += 0 if rec["poss_dup"] else 1
        check(counts["C-SPY-1"] == [2, 2], "log records the deliberate duplicate C-SPY-1 with count 2")
        check(all(v[1] == 1 for k, v in counts.items() if k != "C-SPY-1"), "every other ClOrdID received exactly once")
        ini.stop()
    finally:
        proc.terminate()
        proc.wait(10)


def scenario_drop(workdir):
    print("scenario drop (--drop-after-orders 1)")
    proc, port, orders_log = start_acceptor(workdir, ["--drop-after-orders", "1", "--fill-delay-ms", "50"])
    try:
        app, ini = start_initiator(workdir, port)
        app.send(new_order("D-SPY-1", "SPY", qty=4))
        app.wait(lambda: any(r["150"] == "0" for r in app.reports["D-SPY-1"]), "New before drop")
        app.wait(lambda: app.logouts >= 1, "connection drop")
        check(not any(r["150"] == "F" for r in app.reports["D-SPY-1"]), "dropped after New, before the fill")
        # send while disconnected: QuickFIX stores it with the next seq num; it goes out as a resend
        app.send(new_order("D-AAPL-1", "AAPL", qty=2))
        app.wait(lambda: app.logons >= 2, "automatic re-logon")
        check(True, "initiator reconnected by itself (ReconnectInterval=1)")
        app.wait(lambda: any(r["39"] == "2" for r in app.reports["D-SPY-1"]), "SPY fill after gap fill")
        spy_fill = [r for r in app.reports["D-SPY-1"] if r["150"] == "F"]
        check(len(spy_fill) == 1 and spy_fill[0]["poss_dup"], "fill produced while disconnected arrived via ResendRequest with PossDupFlag=Y")
        app.wait(lambda: any(r["39"] == "2" for r in app.reports["D-AAPL-1"]), "AAPL filled")
        check_fill_sequence(app.reports["D-AAPL-1"], "2", "230.5", 1)
        counts = check_orders_log(orders_log)
        recs = [json.loads(l) for l in open(orders_log)]
        aapl = [r for r in recs if r.get("cl_ord_id") == "D-AAPL-1" and r.get("msg_type") == "D"]
        check(len(aapl) == 1 and aapl[0]["poss_dup"], "order queued while disconnected reached broker once, as PossDup resend")
        check(any(r.get("event") == "drop_connection" for r in recs), "acceptor logged the deliberate drop")
        ini.stop()
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", choices=["basic", "drop", "all"], default="all")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="fixtest-")
    t0 = time.monotonic()
    try:
        if args.scenario in ("basic", "all"):
            d = os.path.join(root, "basic"); os.makedirs(d)
            scenario_basic(d)
        if args.scenario in ("drop", "all"):
            d = os.path.join(root, "drop"); os.makedirs(d)
            scenario_drop(d)
    except AssertionError as e:
        print(f"FAILED: {e}  (logs in {root})")
        return 1
    print(f"PASSED in {time.monotonic() - t0:.1f}s" + (f" (logs in {root})" if args.keep else ""))
    if not args.keep:
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
