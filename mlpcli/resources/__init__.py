"""What this machine allows: the memory a config needs, checked against the limits in force
(the process's cgroup, the system, ulimit)."""
