"""The pppd backend: Debian's pppd carries one session's PPP, larappp does the rest.

Same interface as the built-in engine (`BuiltinPppEngine`): built from the dialled pipe,
`EngineOptions` and the bytes that followed CONNECT; `start()`, `wait_up()`,
`terminate()`, `stop()`, `status()`, `terminated`, `reason`. One file per job:

- `options.py`: the runtime folder, 0700, that becomes pppd's /etc/ppp: the options
  file (0600: it holds `user` and `password`, never argv, the environment or a log) and
  the ip-up/ip-down hooks that report IPCP's DNS servers.
- `process.py`: starting pppd (in a mount namespace of its own where the runtime folder
  is /etc/ppp, `larappp.transport.mountns`), reading its log masked, ending it in order
  (hang-up, SIGTERM, SIGKILL; SIGKILL at once on the device), and what its exit status means (pppd(8), EXIT STATUS).
- `bridge.py`: where pppd cannot open the port (an RFC 2217 URL, later a CMUX channel),
  it gets the slave of a pty pair and a thin pump copies bytes between the pty master
  and the dialled pipe. On a serial device or pty larappp opened, pppd gets that tty
  itself and no byte passes through larappp (`engine.owns_device`).
- `observe.py`: what came up, seen through netlink (interface, IPCP address, IPV6CP
  link-local), the uplink paced (tc), routes and DNS through `HostInterface`, and SLAAC
  in user space over a raw ICMPv6 socket, exactly as with the built-in engine.
- `engine.py`: `PppdEngine`, which puts these together and takes the tty back after pppd.
"""
