#!/usr/bin/python3
"""Writes cohort's man pages from the commands' own --help, at build time.

    manpages.py COHORT OUT_DIR VERSION

cohort.1 from `cohort --help`, and cohort-CMD.1 from `cohort CMD --help` for each command
that help lists. The help texts are already laid out for a terminal, so each page keeps
them as they are (no-fill), under the sections man(7) expects.
"""
import datetime
import os
import re
import subprocess
import sys


def roff(text):
    """Text as roff shows it literally: backslashes doubled, no line read as a request."""
    lines = []
    for line in text.rstrip("\n").split("\n"):
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def help_text(cohort, *args):
    out = subprocess.run([cohort, *args, "--help"], capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        sys.exit(f"manpages: `cohort {' '.join(args)} --help` failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def page(name, summary, text, version, see_also):
    usage, _, rest = text.partition("\n")
    epoch = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds set it
    date = (datetime.date.fromtimestamp(int(epoch)) if epoch else datetime.date.today()).isoformat()
    parts = [
        f'.TH {name.upper()} 1 "{date}" "cohort {version}" "cohort manual"',
        ".SH NAME",
        f"{name} \\- {roff(summary)}",
        ".SH SYNOPSIS",
        ".nf",
        roff(usage.removeprefix("usage: ")),
        ".fi",
        ".SH DESCRIPTION",
        ".nf",
        roff(rest.strip("\n")),
        ".fi",
    ]
    if see_also:
        parts += [".SH SEE ALSO", ", ".join(f"\\fB{p}\\fR(1)" for p in see_also)]
    return "\n".join(parts) + "\n"


def main():
    cohort, out_dir, version = sys.argv[1:4]
    os.makedirs(out_dir, exist_ok=True)
    top = help_text(cohort)
    section = top.split("\ncommands:\n", 1)
    if len(section) != 2:
        sys.exit("manpages: `cohort --help` has no 'commands:' section")
    commands = []
    for line in section[1].split("\n"):
        m = re.match(r"^  (\S+)(?: \S+)*?\s{2,}(.*)$", line)
        if not line.strip():
            break
        if m and m.group(1) not in ("help", "version"):
            commands.append((m.group(1), m.group(2)))
    if not commands:
        sys.exit("manpages: no commands found in `cohort --help`")
    pages = [f"cohort-{c}" for c, _ in commands]
    summary = top.split("\n\n", 2)[1].replace("\n", " ").strip()
    with open(os.path.join(out_dir, "cohort.1"), "w") as f:
        f.write(page("cohort", summary, top, version, pages))
    for command, what in commands:
        with open(os.path.join(out_dir, f"cohort-{command}.1"), "w") as f:
            f.write(page(f"cohort-{command}", what, help_text(cohort, command), version, ["cohort"]))


if __name__ == "__main__":
    main()
