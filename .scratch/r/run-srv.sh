# usage: source run-srv.sh; srv_start NAME [env...]; srv_cmd NAME mem; srv_stop NAME
srv_start() { local n=$1; shift; rm -f /tmp/srv-$n.fifo; mkfifo /tmp/srv-$n.fifo;
  ( env "$@" PORTFILE=/work/main/.scratch/r/port-$n.txt timeout 600 node --expose-gc /work/main/.scratch/r/srv.mjs < /tmp/srv-$n.fifo > /work/main/.scratch/r/srv-$n.log 2>&1 & echo $! > /tmp/srv-$n.pid ) ;
  exec {FD}>/tmp/srv-$n.fifo; eval "SRVFD_$n=$FD";
  for i in $(seq 50); do grep -q READY /work/main/.scratch/r/srv-$n.log 2>/dev/null && break; sleep 0.1; done; grep READY /work/main/.scratch/r/srv-$n.log; }
srv_cmd() { local fd; eval "fd=\$SRVFD_$1"; echo "$2" >&$fd; sleep ${3:-0.5}; tail -1 /work/main/.scratch/r/srv-$1.log; }
srv_stop() { local fd; eval "fd=\$SRVFD_$1"; echo exit >&$fd; exec {fd}>&-; sleep 0.3; }
