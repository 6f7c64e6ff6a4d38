#!/usr/bin/env python3
"""Fake FIX 4.4 broker (acceptor) for integration tests of the execution service.

Built on QuickFIX/Python (quickfix 1.16.0).  Behaviour:

  * NewOrderSingle (35=D), market or limit, OrderQty(38) or CashOrderQty(152)
      -> ExecutionReport New (39=0,150=0), then either one full fill or N partial
         fills (39=1/2, 150=F) with unique ExecID(17), LastQty(32), LastPx(31),
         CumQty(14), LeavesQty(151), AvgPx(6).
      -> symbols in --reject-symbols: ExecutionReport Rejected (39=8,150=8,58=...)
      -> same ClOrdID received twice without PossDupFlag=Y or PossResend=Y:
         rejected as duplicate (103=6); a PossDup=Y resend of a known ClOrdID is
         logged and ignored; a PossResend=Y one is answered with the order's
         status (150=I), and an unknown ClOrdID with PossResend=Y is a new order.
      -> limit orders that do not cross the configured price, and symbols in
         --hold-symbols, stay open (New only) so that cancels can be tested.
  * OrderCancelRequest (35=F): open order -> ExecutionReport Canceled (39=4,150=4);
    otherwise OrderCancelReject (35=9).  OrderCancelReplaceRequest (35=G) is
    answered with OrderCancelReject (434=2, not supported).
  * RequestForPositions (35=AN) -> RequestForPositionsAck (35=AO) + one
    PositionReport (35=AP) per symbol (positions file + fills made since start).
  * --drop-after-orders K: once, right after the K-th order's New report, the
    TCP connection is dropped without Logout.  The acceptor keeps listening, its
    store keeps the sequence numbers, and the fills produced while the peer is
    away are persisted, so on re-logon the initiator sees a gap, sends a
    ResendRequest and gets them back with PossDupFlag=Y.
  * --stray-fill-after-orders K: once, a fill for ClOrdID STRAY-1, which no
    one sent (the initiator must raise it as a break, not book it).
  * Every received D/F/G/AN is appended to --orders-log (JSON lines) with the
    ClOrdID, PossDupFlag, PossResend, MsgSeqNum and running counts, and every
    fill made with its ExecID, quantity and price ("event": "fill").
  * Prints exactly one line "READY <port>" on stdout once the socket listens.

All options can also be given in a --behavior-file (JSON object whose keys are
the long option names with '_' instead of '-'); command-line flags win.
"""
import argparse
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal, ROUND_DOWN, InvalidOperation

import quickfix as fix
import quickfix44 as fix44

# FIX tags used here
T = dict(
    Account=1, AvgPx=6, ClOrdID=11, CumQty=14, ExecID=17, LastPx=31, LastQty=32,
    MsgSeqNum=34, MsgType=35, OrderID=37, OrderQty=38, OrdStatus=39, OrdType=40,
    OrigClOrdID=41, PossDupFlag=43, Price=44, Side=54, Symbol=55, Text=58,
    TimeInForce=59, TransactTime=60, OrdRejReason=103, CxlRejReason=102,
    ExecType=150, LeavesQty=151, CashOrderQty=152, CxlRejResponseTo=434,
    AccountType=581, PosReqID=710, ClearingBusinessDate=715, PosMaintRptID=721,
    PosReqType=724, TotalNumPosReports=727, PosReqResult=728, PosReqStatus=729,
    SettlPrice=730, SettlPriceType=731, PriorSettlPrice=734, PosType=703,
    LongQty=704, ShortQty=705,
)


def utc_ts():
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def fmt_dec(d):
    """Decimal -> plain FIX decimal string without exponent / trailing zeros."""
    d = Decimal(d)
    s = format(d.normalize(), "f")
    return s if s not in ("-0", "") else "0"


def find_data_dictionary():
    here = os.path.dirname(os.path.abspath(fix.__file__))
    candidates = [
        os.path.join(sys.prefix, "share", "quickfix", "FIX44.xml"),
        os.path.join(here, "..", "..", "..", "..", "share", "quickfix", "FIX44.xml"),
        os.path.join(here, "spec", "FIX44.xml"),
    ]
    for c in candidates:
        if os.path.exists(c):
            return os.path.abspath(c)
    return None


# --------------------------------------------------------------------------- options

DEFAULTS = dict(
    port=9878, host="127.0.0.1", sender_comp_id="BROKER", target_comp_id="REBAL",
    store_dir="./acceptor-store", log_dir=None, prices=None, price_map=None,
    default_price=None, partial_fills=1, partial_fills_symbol=None,
    reject_symbols="", hold_symbols="", orders_log=None, drop_after_orders=0,
    positions=None, stray_fill_after_orders=0, fill_delay_ms=20, cash_qty_decimals=4, qty_decimals=6,
    use_data_dictionary=True, data_dictionary=None, username=None, password=None,
    account="TEST-ACCOUNT", screen_log=False,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--port", type=int, help="listen port (0 = pick a free one); default 9878")
    a("--host", help="listen address (SocketAcceptAddress); default 127.0.0.1")
    a("--sender-comp-id", help="our CompID (default BROKER)")
    a("--target-comp-id", help="initiator CompID (default REBAL)")
    a("--store-dir", help="QuickFIX FileStorePath (sequence numbers + sent messages)")
    a("--log-dir", help="QuickFIX FileLogPath (default <store-dir>/log)")
    a("--behavior-file", help="JSON file with any of these options (CLI wins)")
    a("--prices", help='JSON file {"SPY": "580.12", ...}')
    a("--default-price", help="fill price for symbols without a configured price")
    a("--partial-fills", type=int, help="number of fills per order (default 1 = one full fill)")
    a("--partial-fills-symbol", action="append", metavar="SYM=N",
      help="per-symbol number of fills, repeatable (e.g. QQQ=3)")
    a("--reject-symbols", help="comma separated symbols to reject (39=8)")
    a("--hold-symbols", help="comma separated symbols acknowledged (New) but never filled")
    a("--orders-log", help="JSON-lines file recording every received order/cancel (default <store-dir>/orders.jsonl)")
    a("--drop-after-orders", type=int, help="drop the TCP connection once, right after the K-th order's New report")
    a("--stray-fill-after-orders", type=int,
      help="once, after the K-th order's New report, send a fill for a ClOrdID nobody sent (STRAY-1)")
    a("--positions", help='JSON file {"SPY": "10"} or {"SPY": {"long": "10", "short": "0", "price": "580"}}')
    a("--fill-delay-ms", type=int, help="delay between consecutive execution reports (default 20)")
    a("--cash-qty-decimals", type=int, help="decimals of the quantity derived from CashOrderQty (default 4)")
    a("--qty-decimals", type=int, help="decimals used when splitting partial fills (default 6)")
    a("--no-data-dictionary", dest="use_data_dictionary", action="store_const", const=False,
      help="UseDataDictionary=N (no inbound validation)")
    a("--data-dictionary", help="path to FIX44.xml (default: the one shipped with quickfix)")
    a("--username", help="if set, Logon must carry Username(553)=this")
    a("--password", help="if set, Logon must carry Password(554)=this")
    a("--account", help="Account used in position reports (default TEST-ACCOUNT)")
    a("--screen-log", action="store_const", const=True, help="also log FIX traffic to stderr")
    ns = p.parse_args(argv)

    opts = dict(DEFAULTS)
    if ns.behavior_file:
        with open(ns.behavior_file) as fh:
            fb = json.load(fh)
        unknown = set(fb) - set(DEFAULTS)
        if unknown:
            p.error(f"unknown keys in behavior file: {sorted(unknown)}")
        opts.update(fb)
    for k, v in vars(ns).items():
        if k != "behavior_file" and v is not None:
            opts[k] = v
    return opts


def load_prices(opts):
    prices = {}
    if opts.get("prices"):
        with open(opts["prices"]) as fh:
            prices.update({k: Decimal(str(v)) for k, v in json.load(fh).items()})
    if opts.get("price_map"):  # inline map (behavior file)
        prices.update({k: Decimal(str(v)) for k, v in opts["price_map"].items()})
    return prices


def split_csv(v):
    if isinstance(v, (list, tuple)):
        return {s.strip() for s in v if s.strip()}
    return {s.strip() for s in (v or "").split(",") if s.strip()}


def partial_map(v):
    out = {}
    if isinstance(v, dict):
        return {k: int(n) for k, n in v.items()}
    for item in v or []:
        sym, n = item.split("=", 1)
        out[sym.strip()] = int(n)
    return out


# --------------------------------------------------------------------------- broker state

class Order:
    def __init__(self, cl_ord_id, symbol, side, ord_type, qty, price, cash_qty, tif, account):
        self.order_id = None
        self.cl_ord_id = cl_ord_id
        self.symbol = symbol
        self.side = side
        self.ord_type = ord_type
        self.qty = qty  # Decimal or None (cash order before pricing)
        self.price = price
        self.cash_qty = cash_qty
        self.tif = tif
        self.account = account
        self.cum_qty = Decimal(0)
        self.notional = Decimal(0)
        self.status = "A"  # pending new
        self.session_id = None

    @property
    def leaves(self):
        if self.status in ("2", "4", "8", "C"):
            return Decimal(0)
        return (self.qty or Decimal(0)) - self.cum_qty

    @property
    def avg_px(self):
        return (self.notional / self.cum_qty) if self.cum_qty else Decimal(0)

    @property
    def is_open(self):
        return self.status in ("0", "1", "A")


class Broker(fix.Application):
    def __init__(self, opts):
        super().__init__()
        self.o = opts
        self.prices = load_prices(opts)
        self.default_price = Decimal(str(opts["default_price"])) if opts.get("default_price") else None
        self.reject = split_csv(opts["reject_symbols"])
        self.hold = split_csv(opts["hold_symbols"])
        self.partials = partial_map(opts.get("partial_fills_symbol"))
        self.positions = {}
        self.position_px = {}
        if opts.get("positions"):
            with open(opts["positions"]) as fh:
                for sym, v in json.load(fh).items():
                    if isinstance(v, dict):
                        self.positions[sym] = Decimal(str(v.get("long", 0))) - Decimal(str(v.get("short", 0)))
                        if "price" in v:
                            self.position_px[sym] = Decimal(str(v["price"]))
                    else:
                        self.positions[sym] = Decimal(str(v))
        self.orders = {}          # ClOrdID -> Order (every ClOrdID ever accepted)
        self.seen = {}            # ClOrdID -> [total, non_possdup]
        self.order_count = 0
        self.dropped = False
        self.lock = threading.RLock()
        self.log_lock = threading.Lock()
        self.jobs = queue.Queue()
        self.run_id = datetime.now(timezone.utc).strftime("%H%M%S") + f"{os.getpid() % 1000:03d}"
        self.seq = 0
        self.log_path = opts["orders_log"]
        self.worker = threading.Thread(target=self._work, daemon=True)
        self.worker.start()

    # ---- ids / logging
    def next_id(self, prefix):
        with self.lock:
            self.seq += 1
            return f"{prefix}-{self.run_id}-{self.seq}"

    def log_event(self, rec):
        rec["ts"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self.log_lock, open(self.log_path, "a") as fh:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")

    def info(self, msg):
        print(f"[acceptor] {msg}", file=sys.stderr, flush=True)

    # ---- quickfix callbacks
    def onCreate(self, sessionID):
        self.info(f"session created {sessionID}")

    def onLogon(self, sessionID):
        self.info(f"logon {sessionID}")

    def onLogout(self, sessionID):
        self.info(f"logout/disconnect {sessionID}")

    def toAdmin(self, message, sessionID):
        pass

    def fromAdmin(self, message, sessionID):
        if message.getHeader().getField(T["MsgType"]) == "A" and (self.o.get("username") or self.o.get("password")):
            def val(tag):
                return message.getField(tag) if message.isSetField(tag) else None
            if (self.o.get("username") and val(553) != self.o["username"]) or \
               (self.o.get("password") and val(554) != self.o["password"]):
                raise fix.RejectLogon("invalid username/password")

    def toApp(self, message, sessionID):
        pass

    def fromApp(self, message, sessionID):
        hdr = message.getHeader()
        mt = hdr.getField(T["MsgType"])
        poss_dup = hdr.isSetField(T["PossDupFlag"]) and hdr.getField(T["PossDupFlag"]) == "Y"
        poss_resend = hdr.isSetField(97) and hdr.getField(97) == "Y"
        seqnum = int(hdr.getField(T["MsgSeqNum"]))

        def g(tag):
            return message.getField(tag) if message.isSetField(tag) else None

        fields = {name: g(tag) for name, tag in T.items()
                  if tag not in (T["MsgType"], T["MsgSeqNum"], T["PossDupFlag"]) and message.isSetField(tag)}
        rec = {"msg_type": mt, "msg_seq_num": seqnum, "poss_dup": poss_dup, "poss_resend": poss_resend,
               "cl_ord_id": fields.get("ClOrdID"), "symbol": fields.get("Symbol"),
               "side": fields.get("Side"), "fields": fields}
        if mt == "D":
            with self.lock:
                c = self.seen.setdefault(fields.get("ClOrdID"), [0, 0])
                c[0] += 1
                if not poss_dup:
                    c[1] += 1
                rec["count"], rec["count_non_possdup"] = c[0], c[1]
            self.log_event(rec)
            self.jobs.put(("D", sessionID, fields, poss_dup, poss_resend))
        elif mt in ("F", "G"):
            rec["orig_cl_ord_id"] = fields.get("OrigClOrdID")
            self.log_event(rec)
            self.jobs.put((mt, sessionID, fields, poss_dup, None))
        elif mt == "AN":
            self.log_event(rec)
            self.jobs.put(("AN", sessionID, fields, poss_dup, None))
        else:
            self.log_event(rec)
            raise fix.UnsupportedMessageType()

    # ---- worker (all outbound app messages are sent from here, outside QuickFIX callbacks)
    def _work(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                kind = job[0]
                if kind == "D":
                    self.handle_new_order(*job[1:])
                elif kind == "F":
                    self.handle_cancel(job[1], job[2])
                elif kind == "G":
                    self.cancel_reject(job[1], job[2], None, "2", "0", "cancel/replace not supported")
                elif kind == "AN":
                    self.handle_positions(job[1], job[2])
            except Exception as e:  # keep the broker alive
                self.info(f"error handling {job[0]}: {e!r}")

    def send(self, msg, sessionID):
        try:
            fix.Session.sendToTarget(msg, sessionID)
        except fix.SessionNotFound as e:
            self.info(f"send failed: {e}")

    def pause(self):
        if self.o["fill_delay_ms"]:
            time.sleep(self.o["fill_delay_ms"] / 1000.0)

    def exec_report(self, order, exec_type, last_qty=None, last_px=None, text=None, rej_reason=None,
                    cl_ord_id=None, orig_cl_ord_id=None):
        m = fix44.ExecutionReport()
        m.setField(fix.StringField(T["OrderID"], order.order_id or "NONE"))
        m.setField(fix.StringField(T["ClOrdID"], cl_ord_id or order.cl_ord_id))
        if orig_cl_ord_id:
            m.setField(fix.StringField(T["OrigClOrdID"], orig_cl_ord_id))
        exec_id = self.next_id("EXEC")
        m.setField(fix.StringField(T["ExecID"], exec_id))
        m.setField(fix.CharField(T["ExecType"], exec_type))
        m.setField(fix.CharField(T["OrdStatus"], order.status))
        if order.account:
            m.setField(fix.StringField(T["Account"], order.account))
        m.setField(fix.StringField(T["Symbol"], order.symbol or "?"))
        m.setField(fix.CharField(T["Side"], order.side or "1"))
        if order.ord_type:
            m.setField(fix.CharField(T["OrdType"], order.ord_type))
        if order.price is not None:
            m.setField(fix.StringField(T["Price"], fmt_dec(order.price)))
        if order.qty is not None:
            m.setField(fix.StringField(T["OrderQty"], fmt_dec(order.qty)))
        if order.cash_qty is not None:
            m.setField(fix.StringField(T["CashOrderQty"], fmt_dec(order.cash_qty)))
        if order.tif:
            m.setField(fix.CharField(T["TimeInForce"], order.tif))
        if last_qty is not None:
            m.setField(fix.StringField(T["LastQty"], fmt_dec(last_qty)))
            m.setField(fix.StringField(T["LastPx"], fmt_dec(last_px)))
        m.setField(fix.StringField(T["LeavesQty"], fmt_dec(order.leaves)))
        m.setField(fix.StringField(T["CumQty"], fmt_dec(order.cum_qty)))
        m.setField(fix.StringField(T["AvgPx"], fmt_dec(order.avg_px)))
        if rej_reason is not None:
            m.setField(fix.IntField(T["OrdRejReason"], rej_reason))
        if text:
            m.setField(fix.StringField(T["Text"], text))
        m.setField(fix.StringField(T["TransactTime"], utc_ts()))
        self.send(m, order.session_id)
        return exec_id

    def reject_order(self, order, text, reason):
        order.status = "8"
        order.qty = order.qty if order.qty is not None else Decimal(0)
        self.exec_report(order, "8", text=text, rej_reason=reason)

    def market_price(self, symbol):
        return self.prices.get(symbol, self.default_price)

    def handle_new_order(self, sessionID, f, poss_dup, poss_resend):
        clid = f.get("ClOrdID")
        with self.lock:
            known = self.orders.get(clid)
        if known is not None:
            if poss_dup:
                self.info(f"ignoring PossDup resend of known ClOrdID {clid}")
                return
            if poss_resend:
                self.info(f"PossResend of known ClOrdID {clid}: answering with its status")
                known.session_id = sessionID
                self.exec_report(known, "I")
                return
            dup = Order(clid, f.get("Symbol"), f.get("Side"), f.get("OrdType"), None, None, None, None, f.get("Account"))
            dup.session_id = sessionID
            self.reject_order(dup, "duplicate ClOrdID", 6)
            return

        def dec(name):
            v = f.get(name)
            if v is None:
                return None
            try:
                return Decimal(v)
            except InvalidOperation:
                return None

        order = Order(clid, f.get("Symbol"), f.get("Side"), f.get("OrdType") or "1", dec("OrderQty"),
                      dec("Price"), dec("CashOrderQty"), f.get("TimeInForce"), f.get("Account"))
        order.session_id = sessionID
        order.order_id = self.next_id("ORD")
        with self.lock:
            self.orders[clid] = order
            self.order_count += 1
            nth = self.order_count

        sym = order.symbol
        if self.o["stray_fill_after_orders"] and nth == int(self.o["stray_fill_after_orders"]):
            stray = Order("STRAY-1", sym, order.side, "1", Decimal(1), None, None, "3", order.account)
            stray.session_id = sessionID
            stray.order_id = self.next_id("ORD")
            stray.cum_qty = Decimal(1)
            stray.notional = (self.market_price(sym) or Decimal(1))
            stray.status = "2"
            exec_id = self.exec_report(stray, "F", last_qty=Decimal(1), last_px=(self.market_price(sym) or Decimal(1)))
            self.log_event({"event": "stray_fill", "cl_ord_id": "STRAY-1", "exec_id": exec_id})
        if sym in self.reject:
            return self.reject_order(order, f"symbol {sym} rejected by test broker", 1)
        if order.side not in ("1", "2", "5"):
            return self.reject_order(order, f"unsupported side {order.side}", 0)
        if order.ord_type not in ("1", "2"):
            return self.reject_order(order, f"unsupported OrdType {order.ord_type}", 0)
        if order.ord_type == "2" and order.price is None:
            return self.reject_order(order, "limit order without Price(44)", 0)
        mkt = self.market_price(sym)
        fill_px = mkt if mkt is not None else order.price
        if fill_px is None and sym not in self.hold:
            return self.reject_order(order, f"no price for symbol {sym}", 1)
        if order.qty is None:
            if order.cash_qty is None:
                return self.reject_order(order, "neither OrderQty(38) nor CashOrderQty(152)", 0)
            px = fill_px if fill_px is not None else order.price
            if not px:
                return self.reject_order(order, "cannot size cash order without a price", 0)
            q = Decimal(10) ** -int(self.o["cash_qty_decimals"])
            order.qty = (order.cash_qty / px).quantize(q, rounding=ROUND_DOWN)
        if order.qty <= 0:
            return self.reject_order(order, "order quantity is zero", 0)

        # acknowledge
        order.status = "0"
        self.exec_report(order, "0")

        # drop the connection once, right after the K-th order's New report
        if self.o["drop_after_orders"] and nth == int(self.o["drop_after_orders"]) and not self.dropped:
            self.dropped = True
            self.pause()
            sess = fix.Session.lookupSession(sessionID)
            self.info(f"dropping connection after order #{nth} ({clid}) without Logout")
            self.log_event({"event": "drop_connection", "after_order": nth, "cl_ord_id": clid,
                            "next_sender_seq": sess.getExpectedSenderNum(),
                            "next_target_seq": sess.getExpectedTargetNum()})
            sess.disconnect()
            time.sleep(0.2)  # the fills below are persisted while the peer is away

        if sym in self.hold:
            return
        if order.ord_type == "2" and mkt is not None:
            crosses = (mkt <= order.price) if order.side == "1" else (mkt >= order.price)
            if not crosses:
                return  # rests on the book until cancelled
        self.fill(order, fill_px)

    def fill(self, order, px):
        n = max(1, int(self.partials.get(order.symbol, self.o["partial_fills"])))
        # A whole-share order fills in whole shares, as a real broker's does.
        whole = order.cash_qty is None and order.qty == order.qty.to_integral_value()
        q = Decimal(1) if whole else Decimal(10) ** -int(self.o["qty_decimals"])
        chunk = (order.qty / n).quantize(q, rounding=ROUND_DOWN)
        for i in range(n):
            with self.lock:
                if not order.is_open:
                    return  # cancelled meanwhile
                last = order.leaves if i == n - 1 else min(chunk, order.leaves)
                if last <= 0:
                    continue
                order.cum_qty += last
                order.notional += last * px
                order.status = "2" if order.leaves == 0 else "1"
                sign = 1 if order.side == "1" else -1
                self.positions[order.symbol] = self.positions.get(order.symbol, Decimal(0)) + sign * last
                self.position_px[order.symbol] = px
            self.pause()
            exec_id = self.exec_report(order, "F", last_qty=last, last_px=px)
            self.log_event({"event": "fill", "cl_ord_id": order.cl_ord_id, "exec_id": exec_id,
                            "symbol": order.symbol, "side": order.side,
                            "qty": fmt_dec(last), "px": fmt_dec(px)})

    def cancel_reject(self, sessionID, f, order, response_to, reason, text):
        m = fix44.OrderCancelReject()
        m.setField(fix.StringField(T["OrderID"], order.order_id if order else "NONE"))
        m.setField(fix.StringField(T["ClOrdID"], f.get("ClOrdID") or "NONE"))
        m.setField(fix.StringField(T["OrigClOrdID"], f.get("OrigClOrdID") or "NONE"))
        m.setField(fix.CharField(T["OrdStatus"], order.status if order else "8"))
        m.setField(fix.CharField(T["CxlRejResponseTo"], response_to))
        m.setField(fix.IntField(T["CxlRejReason"], int(reason)))
        m.setField(fix.StringField(T["Text"], text))
        self.send(m, sessionID)

    def handle_cancel(self, sessionID, f):
        orig = f.get("OrigClOrdID")
        with self.lock:
            order = self.orders.get(orig)
            if order is not None and order.is_open and order.status != "8":
                order.status = "4"
                ok = True
            else:
                ok = False
        if ok:
            order.session_id = sessionID
            self.exec_report(order, "4", cl_ord_id=f.get("ClOrdID"), orig_cl_ord_id=orig)
        elif order is None:
            self.cancel_reject(sessionID, f, None, "1", "1", f"unknown order {orig}")
        else:
            self.cancel_reject(sessionID, f, order, "1", "0", f"order {orig} not open (OrdStatus={order.status})")

    def handle_positions(self, sessionID, f):
        with self.lock:
            snapshot = dict(self.positions)
            pxs = dict(self.position_px)
        req_id = f.get("PosReqID") or "NONE"
        account = f.get("Account") or self.o["account"]
        acct_type = f.get("AccountType") or "1"
        biz_date = f.get("ClearingBusinessDate") or datetime.now(timezone.utc).strftime("%Y%m%d")
        rpt_id = self.next_id("POSRPT")
        ack = fix44.RequestForPositionsAck()
        ack.setField(fix.StringField(T["PosMaintRptID"], rpt_id))
        ack.setField(fix.StringField(T["PosReqID"], req_id))
        ack.setField(fix.IntField(T["TotalNumPosReports"], len(snapshot)))
        ack.setField(fix.IntField(T["PosReqResult"], 0 if snapshot else 2))  # 2 = no positions found
        ack.setField(fix.IntField(T["PosReqStatus"], 0))
        ack.setField(fix.StringField(T["Account"], account))
        ack.setField(fix.IntField(T["AccountType"], int(acct_type)))
        self.send(ack, sessionID)
        for sym in sorted(snapshot):
            qty = snapshot[sym]
            px = pxs.get(sym) or self.market_price(sym) or Decimal(0)
            r = fix44.PositionReport()
            r.setField(fix.StringField(T["PosMaintRptID"], self.next_id("POS")))
            r.setField(fix.StringField(T["PosReqID"], req_id))
            r.setField(fix.IntField(T["TotalNumPosReports"], len(snapshot)))
            r.setField(fix.IntField(T["PosReqResult"], 0))
            r.setField(fix.StringField(T["ClearingBusinessDate"], biz_date))
            r.setField(fix.StringField(T["Account"], account))
            r.setField(fix.IntField(T["AccountType"], int(acct_type)))
            r.setField(fix.StringField(T["Symbol"], sym))
            r.setField(fix.StringField(T["SettlPrice"], fmt_dec(px)))
            r.setField(fix.IntField(T["SettlPriceType"], 1))
            r.setField(fix.StringField(T["PriorSettlPrice"], fmt_dec(px)))
            grp = fix44.PositionReport.NoPositions()
            grp.setField(fix.StringField(T["PosType"], "SOD"))
            grp.setField(fix.StringField(T["LongQty"], fmt_dec(max(qty, Decimal(0)))))
            grp.setField(fix.StringField(T["ShortQty"], fmt_dec(max(-qty, Decimal(0)))))
            r.addGroup(grp)
            self.pause()
            self.send(r, sessionID)


# --------------------------------------------------------------------------- main

def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build_settings(o):
    dd = o.get("data_dictionary") or find_data_dictionary()
    use_dd = bool(o["use_data_dictionary"]) and dd is not None
    lines = [
        "[DEFAULT]",
        "ConnectionType=acceptor",
        f"SocketAcceptPort={o['port']}",
        f"SocketAcceptAddress={o['host']}",
        "SocketReuseAddress=Y",
        f"FileStorePath={o['store_dir']}",
        f"FileLogPath={o['log_dir']}",
        "StartTime=00:00:00",
        "EndTime=00:00:00",
        "ResetOnLogon=N",
        "ResetOnLogout=N",
        "ResetOnDisconnect=N",
        "PersistMessages=Y",
        f"UseDataDictionary={'Y' if use_dd else 'N'}",
        "ValidateUserDefinedFields=N",
        "AllowUnknownMsgFields=Y",
        "ValidateFieldsOutOfOrder=N",
        "CheckLatency=N",
        "",
        "[SESSION]",
        "BeginString=FIX.4.4",
        f"SenderCompID={o['sender_comp_id']}",
        f"TargetCompID={o['target_comp_id']}",
    ]
    if use_dd:
        lines.insert(lines.index("[SESSION]") - 1, f"DataDictionary={dd}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    o = parse_args(argv)
    if int(o["port"]) == 0:
        o["port"] = free_port(o["host"])
    o["store_dir"] = os.path.abspath(o["store_dir"])
    o["log_dir"] = os.path.abspath(o["log_dir"] or os.path.join(o["store_dir"], "log"))
    o["orders_log"] = os.path.abspath(o["orders_log"] or os.path.join(o["store_dir"], "orders.jsonl"))
    os.makedirs(o["store_dir"], exist_ok=True)
    os.makedirs(o["log_dir"], exist_ok=True)
    os.makedirs(os.path.dirname(o["orders_log"]), exist_ok=True)

    cfg_path = os.path.join(o["store_dir"], "acceptor.cfg")
    with open(cfg_path, "w") as fh:
        fh.write(build_settings(o))
    settings = fix.SessionSettings(cfg_path)
    app = Broker(o)
    store = fix.FileStoreFactory(settings)
    logs = fix.ScreenLogFactory(settings) if o["screen_log"] else fix.FileLogFactory(settings)
    acceptor = fix.SocketAcceptor(app, store, settings, logs)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    acceptor.start()  # binds the listening socket before returning
    print(f"READY {o['port']}", flush=True)
    try:
        while not stop.is_set():
            stop.wait(0.2)
    finally:
        app.jobs.put(None)
        acceptor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
