#!/bin/sh
# Run a kiqpy worker in the background with nohup, for hosts without a service manager (or
# under god/monit watching the pidfile).
#
# Logs: kiqpy writes its log lines to kiqpy.log (--logfile). Anything printed before logging
# is set up, or outside it (a usage error, a -r module that fails to import, a Python crash),
# goes to stderr, which is appended to kiqpy.stderr.log: look there when the worker does not
# start. stdout carries nothing and is discarded.
#
# Shutdown contract: `kill -TERM $(cat kiqpy.pid)` stops fetching, lets running jobs finish
# for up to -t seconds, requeues the rest to the front of their queues and exits 0. A second
# TERM exits at once; jobs still in flight are recovered by another worker after its heartbeat
# expires. `kill -USR1` reopens the log file after logrotate moved it; `kill -TSTP` quiets.
set -eu
cd "$(dirname "$0")"
COUNT="${COUNT:-2}" QUEUE="${QUEUE:-*}" nohup kiqpy -r "${APP:-myapp.jobs}" -t 25 \
    --pidfile kiqpy.pid --logfile kiqpy.log >/dev/null 2>>kiqpy.stderr.log &
echo "kiqpy started, pid $!; logs in kiqpy.log, startup errors in kiqpy.stderr.log"
