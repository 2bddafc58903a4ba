"""The treadmill side: FTMS codec and client, scanning, config, programs, sessions, CLI."""
