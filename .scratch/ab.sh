#!/usr/bin/env bash
# A/B: fixed-result server from two checkouts, pgbench alternating. usage: ab.sh <simple|extended> <clients> [listener] [rounds]
mode=$1; clients=$2; entry=${3:-}; rounds=${4:-4}
echo 'select 1;' > /tmp/select1.sql
PG=/usr/lib/postgresql/15/bin
pids=()
ports=(45431 45432)
dirs=(/work/baseline /work/head)
for i in 0 1; do
  node ${dirs[$i]}/bench/servers/fixed.mjs ${dirs[$i]}/index.js ${ports[$i]} $entry > /dev/null 2>&1 &
  pids+=($!)
done
sleep 1.5
for i in 0 1; do PGPASSWORD=bench $PG/pgbench -n -f /tmp/select1.sql -T 2 -c $clients -j $(( clients < 2 ? 1 : 2 )) -M $mode -h 127.0.0.1 -p ${ports[$i]} -U bench postgres >/dev/null 2>&1; done
for r in $(seq $rounds); do
  for i in 0 1; do
    tps=$(PGPASSWORD=bench $PG/pgbench -n -f /tmp/select1.sql -T 4 -c $clients -j $(( clients < 2 ? 1 : 2 )) -M $mode -h 127.0.0.1 -p ${ports[$i]} -U bench postgres 2>/dev/null | grep -oP 'tps = \K[0-9.]+' | head -1)
    echo "${dirs[$i]##*/} $tps"
  done
done | sort | awk '{s[$1]+=$2; n[$1]++; v[$1]=v[$1]" "int($2)} END {for (k in s) printf "%s mean %.0f (%s)\n", k, s[k]/n[k], v[k]}'
kill ${pids[@]} 2>/dev/null
