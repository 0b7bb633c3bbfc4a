"""Helpers shared by test packages: live servers on 127.0.0.1, linked Bumble controllers."""
