"""PPP as sans-IO cores (RFC 1661, 1662, 1332, 1877, 5072, 1334, 1994).

frame.py   protocol numbers, address/control and protocol field (ACFC, PFC)
fsm.py     the RFC 1661 automaton, once: states, events, actions, restart timer
options.py configuration options as rows, and the Configure-Request/Ack/Nak/Reject rules
lcp.py     LCP option rows, echo keepalive, looped-back links, Protocol-Reject
ipcp.py    IPCP option rows (address, DNS; Van Jacobson refused)
ipv6cp.py  IPV6CP option rows (interface identifier)
auth.py    PAP and CHAP-MD5, both roles
events.py  what a link reports (frozen dataclasses, past tense)
link.py    PppLink: the whole link, host role or module role, over RFC 1662 framing
"""
