"""What the tests share besides fixtures: servers as processes, request-log events, the fixture data."""
