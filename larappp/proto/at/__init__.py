"""AT command channel (host role) as sans-IO pieces, imported by module: `core` (line
splitter, result codes, URCs, the command client), `chat` (chat scripts as data) and
`masking` (secrets out of traces)."""
