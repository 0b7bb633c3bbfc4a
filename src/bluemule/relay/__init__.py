"""The relay's library: what a phone or gateway runs, independent of any one transport."""
