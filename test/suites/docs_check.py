"""Runs the examples of README.md and docs/*.md (see test/suites/docs.sh).

Every ```sql block runs through psql with ON_ERROR_STOP in a fresh database that has
CREATE EXTENSION pglocks (unless the block starts by creating it). An HTML comment on the
line before a block changes that:

  <!-- session: B -->              the block continues the previous example, in the
                                   session named (the first one is A); every session of
                                   the example stays connected until the example ends
  <!-- error: 22012 -->            the block's last statement fails with that SQLSTATE,
                                   which must happen; the session ends there
  <!-- fragment: needs ... -->     not run: the block is part of a statement, or needs
                                   what the comment names

A one-line SELECT whose comment starts with true, false, NULL or a number must return
that value. Any other error, an unknown marker, or a fragment that does not say what it needs fails
the suite. Then the pglocks_key snippets of docs/clients.md run in each language that
has a toolchain here, and their keys are compared with the test vectors.

Prints one line per block (file:line) and exits non-zero on any failure.
"""
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BLOCK_TIMEOUT = 60

# The test vectors of the key algorithm (they never change).
VECTORS = [
    ("", -2039914840885289964),
    ("some lock", -5006958056254205714),
    ("orders:42", -8476019149258318077),
    ("Grüße", -559005354142841542),
    ("日本語", 8606672379249086371),
]

MARKER = re.compile(r"^<!--\s*(session|error|fragment)\s*:\s*(.*?)\s*-->$")


class Block:
    def __init__(self, path, line, lang, text, markers):
        self.path, self.line, self.lang, self.text, self.markers = path, line, lang, text, markers

    @property
    def where(self):
        return f"{os.path.relpath(self.path, ROOT)}:{self.line}"


def parse(path):
    """Fenced blocks of a Markdown file, with the markers on the lines just before each."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        markers, k = [], start - 1
        while k >= 0 and lines[k].startswith("<!--"):
            markers.insert(0, lines[k].strip())
            k -= 1
        blocks.append(Block(path, start + 1, m.group(1), "\n".join(lines[start + 1:j]), markers))
        i = j + 1
    return blocks


class Psql:
    """One psql session fed block by block; output is read until a sentinel line."""

    def __init__(self, dbname):
        self.proc = subprocess.Popen(
            # -e echoes each statement before its result, which check_results() relies on.
            ["psql", "-X", "-q", "-e", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
             "-d", dbname],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.n = 0

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, text):
        """Returns (output, ended): ended is True when psql stopped (an error)."""
        self.n += 1
        sentinel = f"@@pglocks-docs-{self.n}@@"
        try:
            self.proc.stdin.write(text + "\n\\echo " + sentinel + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return "(psql is gone)\n", True
        out = []
        while True:
            try:
                line = self.lines.get(timeout=BLOCK_TIMEOUT)
            except queue.Empty:
                self.close()
                return "".join(out) + f"(no end after {BLOCK_TIMEOUT} s)\n", True
            if line is None:
                self.proc.wait()
                return "".join(out), True
            if line.rstrip("\n") == sentinel:
                return "".join(out), False
            out.append(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def psql_admin(*sql):
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    for s in sql:
        args += ["-c", s]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


failures = []
ran = 0
databases = 0


def fail(where, why, output=""):
    failures.append(where)
    print(f"FAIL  {where}: {why}")
    if output:
        print("      | " + output.rstrip("\n").replace("\n", "\n      | "))


def indent(text):
    return "      | " + text.rstrip("\n").replace("\n", "\n      | ")


def run_examples(blocks):
    """Groups the sql blocks into examples and runs each in a database of its own."""
    global ran, databases
    examples = []
    for b in blocks:
        if b.lang != "sql":
            continue
        kinds = {}
        for m in b.markers:
            mm = MARKER.match(m)
            if not mm:
                if m.startswith("<!--"):
                    fail(b.where, f"unknown marker {m!r}")
                continue
            kinds[mm.group(1)] = mm.group(2)
        b.kinds = kinds
        if "fragment" in kinds:
            if not re.match(r"needs\s+\S", kinds["fragment"]):
                fail(b.where, "a fragment must say what it needs: <!-- fragment: needs ... -->")
            else:
                print(f"skip  {b.where}: fragment, {kinds['fragment']}")
            continue
        if "session" in kinds and examples:
            examples[-1].append(b)
        elif "session" in kinds:
            fail(b.where, "a session marker continues an example, but none comes before it")
        else:
            examples.append([b])

    for example in examples:
        databases += 1
        db = f"pglocks_docs_{os.getpid()}_{databases}"
        psql_admin(f'CREATE DATABASE "{db}"')
        sessions = {}
        try:
            first = [l for l in example[0].text.split("\n") if l.strip() and not l.startswith("--")]
            if not (first and first[0].startswith("CREATE EXTENSION pglocks")):
                psql_admin_db(db, "CREATE EXTENSION pglocks")
            failed_before = len(failures)
            for i, b in enumerate(example):
                if len(failures) > failed_before:
                    for rest in example[i:]:
                        fail(rest.where, "not run: an earlier block of its example failed")
                    break
                name = b.kinds.get("session", "A").strip()
                if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                    fail(b.where, f"session name {name!r}: letters and digits only")
                    continue
                s = sessions.get(name)
                if s is None:
                    s = sessions[name] = Psql(db)
                elif s.proc.poll() is not None:
                    fail(b.where, f"session {name} ended with an error in an earlier block")
                    continue
                ran += 1
                out, ended = s.run(b.text)
                expected = b.kinds.get("error")
                label = f"{b.where} (session {name})" if len(example) > 1 else b.where
                if expected:
                    code = re.search(r"^(?:psql:\S+ )?ERROR:\s+([0-9A-Z]{5}):", out, re.M)
                    if not ended or not code:
                        fail(label, f"announces ERROR {expected}, but ran without error", out)
                    elif code.group(1) != expected:
                        fail(label, f"announces ERROR {expected}, got {code.group(1)}", out)
                    else:
                        print(f"ok    {label}: ERROR {expected} as announced")
                elif ended:
                    fail(label, "error", out)
                else:
                    wrong, checked = check_results(b.text, out)
                    if wrong:
                        fail(label, "a result differs from the one its comment shows", "\n".join(wrong))
                    else:
                        print(f"ok    {label}" + (f" ({checked} results as commented)" if checked else ""))
                        if os.environ.get("DOCS_VERBOSE"):
                            print(indent(out))
        finally:
            for s in sessions.values():
                s.close()
            psql_admin(f'DROP DATABASE "{db}" WITH (FORCE)')


# A one-line SELECT whose comment starts with its result: `SELECT ...;   -- true: ...`.
RESULT_COMMENT = re.compile(r"^(SELECT\b.*;)\s*--\s*(true|false|NULL|-?[0-9]+)\b")
SERVER_MESSAGE = re.compile(r"^(NOTICE|WARNING|INFO|DETAIL|HINT|CONTEXT|LOCATION|QUERY):")


def check_results(text, out):
    """Compares the results of one-line SELECTs with the value their comment starts with.
    psql echoes each statement (-e) and prints a one-column result unaligned, NULL as ''."""
    lines = [l for l in out.split("\n") if not SERVER_MESSAGE.match(l)]
    wrong, checked, pos = [], 0, 0
    for stmt_line in text.split("\n"):
        m = RESULT_COMMENT.match(stmt_line)
        if not m:
            continue
        stmt, want = m.group(1), m.group(2)
        want = {"true": "t", "false": "f", "NULL": ""}.get(want, want)
        try:
            at = lines.index(stmt, pos)
        except ValueError:
            wrong.append(f"{stmt}: not found in psql's echo")
            continue
        got = lines[at + 1] if at + 1 < len(lines) else "(nothing)"
        pos = at + 1
        checked += 1
        if got != want:
            wrong.append(f"{stmt}  -- the comment shows {m.group(2)}, psql printed {got!r}")
    return wrong, checked


def psql_admin_db(db, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                   check=True, stdout=subprocess.DEVNULL)


# --- the key snippets of docs/clients.md ---------------------------------------------

def java_literal(s):
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else
                         "".join(f"\\u{u:04x}" for u in _utf16(c)) for c in s) + '"'


def _utf16(c):
    b = c.encode("utf-16-be")
    return [int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2)]


def split_imports(code, pattern):
    """Splits the leading import lines (or a Go import block) from the rest."""
    m = re.match(pattern, code, re.S)
    return (m.group(1), code[m.end(1):]) if m else ("", code)


def program(lang, code, tmp):
    """Writes a program around a snippet that prints the key of each vector, one a line.
    Returns the command that runs it, or None with the reason when there is no toolchain."""
    keys = [k for k, _ in VECTORS]
    if lang == "python":
        path = os.path.join(tmp, "snippet.py")
        open(path, "w", encoding="utf-8").write(
            code + "\n\nfor k in %r:\n    print(pglocks_key(k))\n" % (keys,))
        return [sys.executable, path], None
    if lang == "js":
        if not shutil.which("node"):
            return None, "no node"
        path = os.path.join(tmp, "snippet.js")
        import json
        open(path, "w", encoding="utf-8").write(
            code + "\n\nfor (const k of %s) console.log(pglocksKey(k).toString());\n" % json.dumps(keys))
        return ["node", path], None
    if lang == "java":
        if not (shutil.which("javac") and shutil.which("java")):
            return None, "no javac"
        imports, body = split_imports(code, r"((?:import [^\n]*\n|\s*\n)*)")
        d = os.path.join(tmp, "java")
        os.makedirs(d, exist_ok=True)
        src = os.path.join(d, "Snippet.java")
        open(src, "w", encoding="utf-8").write(
            imports + "\npublic class Snippet {\n" + body +
            "\n    public static void main(String[] args) throws Exception {\n" +
            "".join(f"        System.out.println(pglocksKey({java_literal(k)}));\n" for k in keys) +
            "    }\n}\n")
        r = subprocess.run(["javac", "-encoding", "UTF-8", "-d", d, src],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return ["sh", "-c", "echo " + repr(r.stdout + r.stderr) + "; exit 1"], None
        return ["java", "-cp", d, "Snippet"], None
    if lang == "go":
        if not shutil.which("go"):
            return None, "no go"
        d = os.path.join(tmp, "go")
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "main.go"), "w", encoding="utf-8").write(
            "package main\n\nimport \"fmt\"\n\n" + code + "\n\nfunc main() {\n" +
            "".join("\tfmt.Println(PglocksKey(%s))\n" % go_literal(k) for k in keys) +
            "}\n")
        open(os.path.join(d, "go.mod"), "w").write("module snippet\n\ngo 1.19\n")
        return ["sh", "-c", f"cd {d} && GOTOOLCHAIN=local GOPROXY=off GOCACHE={tmp}/go-cache "
                f"GOPATH={tmp}/gopath go run ."], None
    if lang == "ruby":
        if not shutil.which("ruby"):
            return None, "no ruby"
        path = os.path.join(tmp, "snippet.rb")
        open(path, "w", encoding="utf-8").write(
            "# encoding: utf-8\n" + code + "\n\n%s.each { |k| puts pglocks_key(k) }\n" %
            ("[" + ", ".join('"' + k + '"' for k in keys) + "]"))
        return ["ruby", path], None
    if lang == "rust":
        registry = "/usr/share/cargo/registry"
        if not shutil.which("cargo"):
            return None, "no cargo"
        if not any(n.startswith("sha2-") for n in (os.listdir(registry) if os.path.isdir(registry) else [])):
            return None, f"no sha2 crate in {registry} (Debian's librust-sha2-dev)"
        d = os.path.join(tmp, "rust")
        os.makedirs(os.path.join(d, "src"), exist_ok=True)
        open(os.path.join(d, "Cargo.toml"), "w").write(
            '[package]\nname = "snippet"\nversion = "0.1.0"\nedition = "2021"\n\n'
            '[dependencies]\nsha2 = "0.10"\n')
        open(os.path.join(d, "src", "main.rs"), "w", encoding="utf-8").write(
            code + "\n\nfn main() {\n" +
            "".join(f"    println!(\"{{}}\", pglocks_key({rust_literal(k)}));\n" for k in keys) + "}\n")
        return ["sh", "-c", f"cd {d} && cargo run --quiet --offline "
                "--config 'source.crates-io.replace-with=\"debian\"' "
                f"--config 'source.debian.directory=\"{registry}\"'"], None
    return None, "no harness for this language"


def go_literal(s):
    # Go source is UTF-8: the key goes in as it is.
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rust_literal(s):
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else f"\\u{{{ord(c):x}}}" for c in s) + '"'


def run_key_snippets(path):
    global ran
    blocks = parse(path)
    text = open(path, encoding="utf-8").read()
    # The snippets are the fenced blocks of the section "pglocks_key in each language".
    start = text.index("### pglocks_key in each language")
    end = text.index("\n## ", start)
    first = text[:start].count("\n") + 1
    last = text[:end].count("\n") + 1
    snippets = [b for b in blocks if first <= b.line <= last]
    langs = [b.lang for b in snippets]
    for want in ("python", "js", "go", "java", "ruby", "rust"):
        if want not in langs:
            fail(os.path.relpath(path, ROOT), f"no {want} snippet in 'pglocks_key in each language'")
    want_out = [str(v) for _, v in VECTORS]
    with tempfile.TemporaryDirectory(prefix="pglocks-docs-") as tmp:
        for b in snippets:
            cmd, why = program(b.lang, b.text, tmp)
            if cmd is None:
                print(f"skip  {b.where}: {b.lang} key snippet: {why}")
                continue
            ran += 1
            r = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8",
                               env=dict(os.environ, LC_ALL="C.UTF-8"), timeout=600)
            got = r.stdout.split()
            if r.returncode != 0 or got != want_out:
                fail(b.where, f"{b.lang} key snippet: keys differ from the test vectors",
                     "want " + " ".join(want_out) + "\ngot  " + " ".join(got) + "\n" + r.stderr)
            else:
                print(f"ok    {b.where}: {b.lang} key snippet gives the {len(VECTORS)} test vectors")


def check_vector_tables(paths):
    """Every table of test vectors in the docs lists exactly the vectors."""
    want = [str(v) for _, v in VECTORS]
    for path in paths:
        text = open(path, encoding="utf-8").read()
        for m in re.finditer(r"^\| key \|.*\n\|[-| ]+\n((?:\|.*\n)+)", text, re.M):
            rows = m.group(1).strip("\n").split("\n")
            got = [r.strip().strip("|").split("|")[-1].strip() for r in rows]
            where = f"{os.path.relpath(path, ROOT)}:{text[:m.start()].count(chr(10)) + 1}"
            if got != want:
                fail(where, "test-vector table differs from the vectors", " ".join(got))
            else:
                print(f"ok    {where}: test-vector table")


def main():
    files = [os.path.join(ROOT, "README.md")] + sorted(
        os.path.join(ROOT, "docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
    if len(sys.argv) > 1:
        files = [os.path.abspath(f) for f in sys.argv[1:]]
    for f in files:
        run_examples(parse(f))
    clients = os.path.join(ROOT, "docs", "clients.md")
    if clients in files:
        run_key_snippets(clients)
    check_vector_tables(files)
    print()
    print(f"docs: {ran} blocks run, {len(failures)} failed")
    if failures:
        print("failed: " + ", ".join(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
