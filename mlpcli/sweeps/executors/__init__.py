"""Where a sweep's trials run, behind one interface: worker processes on this machine, or a
Ray cluster."""
