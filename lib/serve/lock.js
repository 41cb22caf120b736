'use strict';
// A data directory belongs to one server at a time: two PGlites writing one directory diverge
// silently and corrupt it. A lock file holds the owner's process id, as PostgreSQL's
// postmaster.pid does; a lock whose process is gone is stale and taken over.

const fs = require('node:fs');
const path = require('node:path');

const LOCK_FILE = 'pg-gateway-native.pid';

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** Locks `dir` (created if missing) for this process; returns the unlock function. */
function lockDataDir(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK_FILE);
  const mine = `${process.pid}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, mine, { flag: 'wx' });
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8') === mine) fs.unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const pid = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw Object.assign(new Error(`data directory ${dir} is in use by process ${pid} (another pg-gateway-native serve); stop it first`), { code: 'DATA_DIR_LOCKED' });
      }
      // Stale: its process is gone.
      fs.rmSync(file, { force: true });
    }
  }
  throw Object.assign(new Error(`cannot lock data directory ${dir}`), { code: 'DATA_DIR_LOCKED' });
}

module.exports = { lockDataDir, LOCK_FILE };
