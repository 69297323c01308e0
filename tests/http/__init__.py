"""HTTP tests: a real `drl serve` (or the app in process), the installed `drl`, browsers."""
