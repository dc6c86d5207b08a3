"""A Python app that keeps state in files, as Python apps do: it reads a
bundled config directory, counts its runs in a file it replaces
atomically, backs the config up with shutil.copytree, and logs each run in
a SQLite database. Built into a WASI 0.2 component by componentize-py; its
output is deterministic, so hosts compare line by line.
"""

import os
import shutil
import sqlite3
import sys

# Both are directories the host gives it (bundled by `larder compose`, or
# preopened with --dir).
CONFIG = "/etc/app"
STATE = "/state"


class Run:
    def run(self) -> None:
        print("args", sys.argv[1:])
        for root, dirs, files in sorted(os.walk(CONFIG)):
            sizes = [os.path.getsize(os.path.join(root, f)) for f in sorted(files)]
            print("config", root, sorted(dirs), sorted(files), sizes)
        with open(os.path.join(CONFIG, "app.conf")) as f:
            settings = dict(line.strip().split("=", 1) for line in f if "=" in line)
        print("greeting", settings.get("greeting"))

        runs_file = os.path.join(STATE, "runs")
        try:
            with open(runs_file) as f:
                runs = int(f.read()) + 1
        except FileNotFoundError:
            runs = 1
        # Replaced atomically: written beside, then renamed over.
        with open(runs_file + ".tmp", "w") as f:
            f.write(str(runs))
            f.flush()
            os.fsync(f.fileno())
        os.replace(runs_file + ".tmp", runs_file)
        print("runs", runs)

        backup = os.path.join(STATE, "backup")
        shutil.copytree(CONFIG, backup, dirs_exist_ok=True)
        copied = sorted(os.path.relpath(os.path.join(r, f), backup)
                        for r, _, fs in os.walk(backup) for f in fs)
        print("backup", copied)

        db = sqlite3.connect(os.path.join(STATE, "log.db"))
        db.execute("create table if not exists run(n integer primary key, greeting text)")
        db.execute("insert into run values (?, ?)", (runs, settings.get("greeting")))
        db.commit()
        print("logged", db.execute("select count(*), max(n) from run").fetchone(),
              db.execute("pragma integrity_check").fetchone()[0])
        db.close()
        print("state", sorted(os.listdir(STATE)))
