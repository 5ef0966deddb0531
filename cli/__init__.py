"""The `thinktoggle` command line."""
