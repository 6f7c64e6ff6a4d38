#!/usr/bin/env python3
"""Generate /work/calgen/xnys.csv: NYSE (XNYS) calendar exceptions 2000-01-01..2040-12-31.

One row per weekday (Mon-Fri) on which XNYS is closed, closes early (before
16:00 New York) or opens late (after 09:30 New York), derived from the
`exchange_calendars` package.

Layout: date,kind,open,close,name
  kind  = closed | early_close | late_open
  open/close = New York wall-clock HH:MM (empty for closed rows)
"""
import csv
import os
import sys
from datetime import time

import exchange_calendars as xcals
import pandas as pd

START, END = "2000-01-01", "2040-12-31"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xnys.csv")
TZ = "America/New_York"
REGULAR_OPEN, REGULAR_CLOSE = time(9, 30), time(16, 0)

# Names for ad-hoc closures (exchange_calendars lists only their dates).
ADHOC_CLOSED_NAMES = {
    "2001-09-11": "September 11 Attacks",
    "2001-09-12": "September 11 Attacks",
    "2001-09-13": "September 11 Attacks",
    "2001-09-14": "September 11 Attacks",
    "2004-06-11": "National Day of Mourning for President Reagan",
    "2007-01-02": "National Day of Mourning for President Ford",
    "2012-10-29": "Hurricane Sandy",
    "2012-10-30": "Hurricane Sandy",
    "2018-12-05": "National Day of Mourning for President George H.W. Bush",
    "2025-01-09": "National Day of Mourning for President Carter",
}

# Plain names for the special-close rules of the XNYS calendar.
EARLY_CLOSE_RULE_NAMES = {
    "Black Friday": "Day after Thanksgiving",
    "Christmas Eve": "Christmas Eve",
    "Mondays, Tuesdays, and Thursdays Before Independence Day": "Day before Independence Day",
    "Wednesdays Before Independence Day including and after 2013": "Day before Independence Day",
    "Fridays after Independence Day prior to 2013": "Day after Independence Day",
}

# Ad-hoc early closes (exchange_calendars lists only their dates).
ADHOC_EARLY_CLOSE_NAMES = {
    "1999-12-31": "New Year's Eve (Y2K)",
    "2003-12-26": "Day after Christmas",
}


def clean(name: str) -> str:
    return name.replace(",", "").strip()


def main() -> int:
    cal = xcals.get_calendar("XNYS", start=START, end=END)

    # --- names -------------------------------------------------------------
    names: dict[str, str] = {}
    reg = cal.regular_holidays.holidays(START, END, return_name=True)
    for d, n in reg.items():
        names[str(d.date())] = clean(n)
    for _t, hcal in cal.special_closes:
        for d, n in hcal.holidays(START, END, return_name=True).items():
            names.setdefault(str(d.date()), clean(EARLY_CLOSE_RULE_NAMES.get(n, n)))
    for _t, hcal in cal.special_opens:
        for d, n in hcal.holidays(START, END, return_name=True).items():
            names.setdefault(str(d.date()), clean(n))
    names.update(ADHOC_CLOSED_NAMES)
    names.update(ADHOC_EARLY_CLOSE_NAMES)

    # --- sessions ----------------------------------------------------------
    sched = cal.schedule.loc[START:END]
    opens = sched["open"].dt.tz_convert(TZ)
    closes = sched["close"].dt.tz_convert(TZ)

    weekdays = pd.bdate_range(START, END)  # Mon-Fri
    session_set = set(sched.index)

    rows = []
    for day in weekdays:
        ds = str(day.date())
        if day not in session_set:
            rows.append((ds, "closed", "", "", names.get(ds, "")))
            continue
        o, c = opens.loc[day].time(), closes.loc[day].time()
        if o > REGULAR_OPEN:
            kind = "late_open"
        elif c < REGULAR_CLOSE:
            kind = "early_close"
        else:
            continue
        rows.append((ds, kind, o.strftime("%H:%M"), c.strftime("%H:%M"), names.get(ds, "")))

    rows.sort(key=lambda r: r[0])
    with open(OUT, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
        w.writerow(["date", "kind", "open", "close", "name"])
        w.writerows(rows)

    unnamed = [r for r in rows if not r[4]]
    print(f"exchange_calendars {xcals.__version__}: wrote {len(rows)} rows to {OUT}")
    if unnamed:
        print("WARNING unnamed rows:", unnamed, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
