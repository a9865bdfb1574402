"""Everything larappp knows about the u-blox LARA-R6: data, builders, parsers, rules, decisions.

The only package that knows LARA-R6 (STYLE.md §5). It is pure: standard library only, no
I/O, time passed in. Callers import the module they need by its own name
(`from larappp.lara_r6 import commands`); nothing is re-exported here:

- commands: AT command builders that validate and quote their arguments
- parsers: typed parsers for the responses and URCs (app note literals in tests)
- identity: model, firmware, IMEI, ICCID, access technology names, +CESQ signal quality
- rules: limits, per-command timeouts, URC names, and check_pdp_plan() for the session set
- ports: +UEMBPF port ranges and the host-side port check (app note §4.3)
- xlat: when to switch 464XLAT on or off without reboot loops (app note §2.5)
- scripts: the fixed AT sequences of bring-up and dialling, as chat scripts

Reference: u-blox LARA-R6 Internet applications development guide, UBX-22001854 ("app note").
"""
