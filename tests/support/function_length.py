#!/usr/bin/env python3
"""Lists the functions of cohort's sources (not its tests) whose bodies run over a limit.

A function may run longer when the comment right above its signature says why in a line
that starts with "Long:". Exits 1 when any other function is too long, naming each.

    tests/support/function_length.py [--max 80] [ROOT]
    tests/support/function_length.py --self-check   # the reading itself, on made-up sources

The reading is by braces, not a compiler: comments, strings and character literals are
blanked first; a '{' at namespace or class level whose text since the last ';', '{' or '}'
holds a ')' opens a function body; any other is a namespace, class, enum or initialiser.
"""
import argparse
import pathlib
import re
import sys

SOURCE_DIRS = ("checkpoint", "cli", "collectives", "common", "launcher", "spank", "topology", "tuner",
               "serve", "python", "pipeline", "lineage", "dashboard")
SCOPE = re.compile(r"\b(namespace|struct|class|enum|union)\b[^()]*$|\bextern\s*$")


def blank(text):
    """The text with comments, strings and character literals blanked, lines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def long_functions(path, limit):
    raw = path.read_text(errors="replace")
    raw_lines = raw.split("\n")
    code = blank(raw)
    stack, since, line = [], [], 1  # stack: (is_function, opening line, signature line)
    for c in code:
        if c == "\n":
            line += 1
        if c == "{":
            head = "".join(since)
            in_function = any(f for f, _, _ in stack)
            is_function = not in_function and ")" in head and not SCOPE.search(head)
            sig = line - head.strip("\n ").count("\n") if head.strip() else line
            stack.append((is_function, line, sig))
            since = []
        elif c in ";}":
            if c == "}" and stack:
                is_function, opened, sig = stack.pop()
                if is_function and line - opened + 1 > limit and not has_reason(raw_lines, sig):
                    yield sig, line - opened + 1
            since = []
        else:
            since.append(c)


def has_reason(lines, sig):
    """Whether the comment block right above line `sig` (1-based) says why it is long."""
    i = sig - 2
    while i >= 0 and lines[i].strip().startswith("//"):
        if lines[i].strip().startswith("// Long:"):
            return True
        i -= 1
    return False


def self_check():
    """The reader against sources whose answer is known; an AssertionError names a miss."""
    import tempfile
    body = lambda n: "\n".join(f"  x += {i};  // {{ not a brace" for i in range(n - 2))
    source = "\n".join([
        "namespace cohort {",
        "struct Widget {",
        "  int method(int a) const {", body(81), "  }",   # 81 lines inside a class
        "};",
        "int fits(int x) {", body(80), "}",
        "// Long: a table that reads best whole.",
        "int excused(int x) {", body(90), "}",
        "const char* text = \"){\";",
        "int spans(int a,",
        "          int b) {", "  auto f = [&] {", body(85), "  };", "  return 0;", "}",
        "}  // namespace cohort", ""])
    with tempfile.TemporaryDirectory() as root:
        (pathlib.Path(root) / "common").mkdir()
        path = pathlib.Path(root) / "common" / "widget.cpp"
        path.write_text(source)
        found = list(long_functions(path, 80))
    lines = source.split("\n")
    expected = [(lines.index("  int method(int a) const {") + 1, 81),
                (lines.index("int spans(int a,") + 1, 88)]  # from its "{" line to its "}"
    assert found == expected, f"expected {expected}, found {found}"
    print("function_length: the reader finds what it should")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=80, help="the most lines a body may have")
    parser.add_argument("--self-check", action="store_true", help="check the reader on made-up sources")
    parser.add_argument("root", nargs="?", default=pathlib.Path(__file__).resolve().parents[2], type=pathlib.Path)
    args = parser.parse_args()
    if args.self_check:
        return self_check()
    found = []
    for top in SOURCE_DIRS:
        for path in sorted((args.root / top).rglob("*.[ch]pp")):
            for sig, length in long_functions(path, args.max):
                found.append(f"{path.relative_to(args.root)}:{sig}: a function of {length} lines "
                             f"(split it into named steps, or say why above it in a '// Long:' line)")
    for f in found:
        print(f)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
