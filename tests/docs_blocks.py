"""The code blocks of the documentation: finding them, checking them, running them.

Used by tests/test_docs.py (read its docstring for the rules). This module imports
only the standard library at the top, because it is also the command shim that
executed bash blocks call (`python tests/docs_blocks.py shim sat-keras ARGS...`,
`python tests/docs_blocks.py run-python ...`), and those must start fast.

Documents: README.md, CONTRIBUTING.md, docs/**/*.md and saved_models/**/README.md.
Blocks: fenced ```python (or py) and ```bash (or sh, shell, console: `$ ` prompts).
"""

import ast
import builtins
import dataclasses
import importlib
import inspect
import json
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
DOC_GLOBS = ("README.md", "CONTRIBUTING.md", "docs/**/*.md", "saved_models/**/README.md")
LANGUAGES = {"python": "python", "py": "python", "python3": "python", "bash": "bash",
             "sh": "bash", "shell": "bash", "console": "bash", "shell-session": "bash"}
SKIP_MARKER = re.compile(r"^\s*<!--\s*docs-test:(?P<body>.*?)-->\s*$")

# The placeholders an executed block may use, spelled as in the docs. The test makes
# each one it finds in a block under that very name in the block's working directory
# (so blocks run verbatim; nothing is substituted in their text).
PLACEHOLDERS = ("PHOTO.jpg", "DATA_DIR", "RUN_DIR")

# The tiny-run rule: in executed blocks, these flags are appended to every command that
# accepts them (argparse keeps the last value, so `--epochs 30 --epochs 1` trains 1),
# and python keyword arguments of the same names, written as integer literals, are
# lowered to these values. `when`: "always", "if-given" (only where the block already
# passes the flag) or "synthetic" (only where the command's --dataset is synthetic,
# the default of `sat-keras train`: --num-images is an error with real data).
TINY = {"--epochs": ("1", "always"), "--scst-epochs": ("1", "if-given"),
        "--num-images": ("160", "synthetic")}

# Bash blocks that are checked but never executed, whatever their marker: setting up an
# environment (the test runs inside one that these commands made) and running the tests or
# the linter (this test is part of that run). Checks 1-4 still apply to them.
NOT_EXECUTED = (
    (re.compile(r"\bpip3?\s+install\b|-m\s+venv\b|\bvirtualenv\b|\bgit\s+clone\b|"
                r"\bapt(-get)?\s+install\b|\bconda\s|\bbin/activate\b"),
     "sets up an environment; the test runs in one set up that way"),
    (re.compile(r"\bpytest\b|\bruff\b|\.ci/run\b"),
     "runs the tests or the linter, which this test is part of"),
)
# What no plain CPU machine without network can run: such a block must carry a skip marker.
NEEDS_MARKER = re.compile(r"\bdocker\b|\bnvidia-smi\b|--download\b|--tpu\b|\bgcloud\b")

SERVER_ADDRESS = re.compile(r"\b(?:localhost|127\.0\.0\.1):(8500|8501)\b")
OUTPUT_FLAGS = ("--output-dir", "--work-dir", "--output")
PLACEHOLDER_WORD = re.compile(r"^[A-Z][A-Z0-9_]*(\.\.\.)?$")


@dataclasses.dataclass
class DocError:
    path: str
    line: int
    message: str

    def __str__(self):
        return f"{self.path}:{self.line}: {self.message}"


@dataclasses.dataclass
class Block:
    path: str  # relative to the repository, as errors name it
    line: int  # the opening fence's line (1-based); the code starts on the next
    language: str  # "python" or "bash"
    fence_language: str  # as written (bash, console, ...)
    text: str
    skip_reason: str | None  # the marker's reason; None without a marker

    @property
    def where(self):
        return f"{self.path}:{self.line}"

    @property
    def skipped(self):
        return self.skip_reason is not None


# ---------------------------------------------------------------- markdown


def doc_files(root=REPOSITORY):
    """The documents, sorted, as paths relative to `root`."""
    root = pathlib.Path(root)
    found = set()
    for pattern in DOC_GLOBS:
        found.update(path for path in root.glob(pattern) if path.is_file())
    return sorted(path.relative_to(root).as_posix() for path in found)


def parse_markdown(text, path):
    """(blocks, prose, errors) of one document.

    blocks: the python and bash blocks; prose: (line, text) of every line outside
    fenced blocks; errors: malformed skip markers.
    """
    lines = text.splitlines()
    blocks, prose, errors = [], [], []
    pending = None  # (line, reason) of a skip marker not yet followed by a fence
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = re.match(r"^(\s*)(`{3,}|~{3,})\s*([^\s`{]*)", line)
        if fence:
            indent, marks, language = fence.group(1), fence.group(2), fence.group(3).lower()
            body, index = [], index + 1
            closed = False
            while index < len(lines):
                closing = re.match(r"^\s*(`{3,}|~{3,})\s*$", lines[index])
                if closing and closing.group(1)[0] == marks[0] and \
                        len(closing.group(1)) >= len(marks):
                    closed = True
                    break
                content = lines[index]
                body.append(content[len(indent):] if content.startswith(indent) else
                            content.lstrip())
                index += 1
            start = index - len(body)  # 1-based line of the opening fence
            if not closed:
                errors.append(DocError(path, start, "a code block is never closed"))
            if language in LANGUAGES:
                blocks.append(Block(path, start, LANGUAGES[language], language,
                                    "\n".join(body) + "\n", pending[1] if pending else None))
            elif pending:
                errors.append(DocError(path, pending[0], f"the skip marker is followed by a "
                                       f"```{language or '(no language)'} block, which the "
                                       "test does not run: remove the marker"))
            pending = None
            index += 1
            continue
        marker = SKIP_MARKER.match(line)
        if marker:
            if pending:
                errors.append(DocError(path, pending[0],
                                       "a skip marker not followed by a code block"))
            body = marker.group("body").strip()
            skip = re.match(r"^skip\b(.*)$", body)
            if not skip:
                errors.append(DocError(path, index + 1, f"unknown docs-test marker "
                                       f"{body!r}: the one marker is `<!-- docs-test: skip "
                                       "REASON -->`"))
                pending = None
            elif not skip.group(1).strip():
                errors.append(DocError(path, index + 1, "a skip marker without a reason: "
                                       "write `<!-- docs-test: skip REASON -->`"))
                pending = (index + 1, "")
            else:
                pending = (index + 1, skip.group(1).strip())
        elif line.strip():
            if pending:
                errors.append(DocError(path, pending[0],
                                       "a skip marker not followed by a code block"))
                pending = None
            prose.append((index + 1, line))
        else:
            prose.append((index + 1, line))
        index += 1
    if pending:
        errors.append(DocError(path, pending[0], "a skip marker not followed by a code block"))
    return blocks, prose, errors


def inline_code(prose):
    """(line, code) of every inline code span of the prose, a span across lines joined."""
    spans, paragraph = [], []

    def flush():
        if not paragraph:
            return
        text = "\n".join(line for _, line in paragraph)
        for match in re.finditer(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", text, re.S):
            line = paragraph[0][0] + text.count("\n", 0, match.start())
            spans.append((line, " ".join(match.group(2).split())))
        paragraph.clear()

    previous = None
    for number, line in prose:
        if not line.strip() or (previous is not None and number != previous + 1):
            flush()
        if line.strip():
            paragraph.append((number, line))
        previous = number
    flush()
    return spans


# ---------------------------------------------------------------- shell parsing


def _strip_comment(line):
    quote = None
    for position, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            return line[:position]
    return line


def logical_lines(block):
    """(line, command line) of a bash block: continuations joined, comments and prompts gone."""
    lines, buffer, start = [], "", None
    for offset, raw in enumerate(block.text.splitlines()):
        number = block.line + 1 + offset
        line = raw
        if block.fence_language == "console" and not buffer:
            stripped = line.lstrip()
            if stripped.startswith("$ ") or stripped == "$":
                line = stripped[2:]
            else:
                continue  # the command's output
        line = _strip_comment(line)
        if start is None:
            start = number
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            lines.append((start, buffer.strip()))
        buffer, start = "", None
    if buffer.strip():
        lines.append((start, buffer.strip()))
    return lines


def split_commands(line):
    """The simple commands of a command line: split at &&, ||, ;, & and pipes.

    A `|` inside [brackets] or between two words without spaces (`mean|greedy`) is a
    documented alternative, not a pipe.
    """
    commands, current, quote, depth = [], "", None, 0
    position = 0
    while position < len(line):
        char = line[position]
        if quote:
            current += char
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            current += char
        elif char == "[":
            depth += 1
            current += char
        elif char == "]":
            depth = max(0, depth - 1)
            current += char
        elif line.startswith(("&&", "||"), position) and depth == 0:
            commands.append(current)
            current = ""
            position += 1
        elif char in ";&" and depth == 0 and not re.search(r"[<>]$", current):
            commands.append(current)
            current = ""
        elif char == "|" and depth == 0 and (
                position == 0 or line[position - 1].isspace()
                or position + 1 == len(line) or line[position + 1].isspace()):
            commands.append(current)
            current = ""
        else:
            current += char
        position += 1
    commands.append(current)
    return [command.strip() for command in commands if command.strip()]


WRAPPERS = {"time", "nohup", "exec", "command", "sudo", "env"}


def command_words(command):
    """The words of one simple command: assignments, wrappers and redirections dropped."""
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise ValueError(f"cannot split {command!r} into words: {error}") from None
    kept, skip_next = [], False
    for word in words:
        if skip_next:
            skip_next = False
            continue
        if re.fullmatch(r"\d*(>>?|<)", word):
            skip_next = True
            continue
        if re.match(r"^\d*(>>?|<|&>)", word):
            continue
        kept.append(word)
    while kept and (re.match(r"^[A-Za-z_]\w*=", kept[0]) or kept[0] in WRAPPERS
                    or kept[0] == "timeout"):
        kept = kept[2:] if kept[0] == "timeout" else kept[1:]
    return kept


def _is_python(word):
    return re.fullmatch(r"python(3(\.\d+)?)?", os.path.basename(word)) is not None


def _clean(word):
    """A documented word without its [optional] brackets."""
    return word.strip("[]")


def _flags_of(word):
    """The flags one documented word names: `--a|--b` both; `--[no-]x` both forms."""
    word = _clean(word)
    negatable = re.fullmatch(r"--\[no-\]([\w-]+)", word)
    if negatable:
        return [f"--{negatable.group(1)}", f"--no-{negatable.group(1)}"]
    return [part.split("=", 1)[0] for part in word.split("|") if part.startswith("-")]


def _is_flag(word):
    word = _clean(word)
    return word.startswith("-") and len(word) > 1 and not re.fullmatch(r"-[\d.]+", word)


def _is_synopsis(words):
    return any(word.startswith("[") or word.endswith("]") or "|" in word or "..." in word
               for word in words)


def _unknown_placeholders(words):
    unknown = []
    for word in words:
        if _is_flag(word):
            continue
        for segment in re.split(r"[/=]", _clean(word)):
            if PLACEHOLDER_WORD.match(segment) and segment not in PLACEHOLDERS:
                unknown.append(segment)
    return unknown


# ---------------------------------------------------------------- python


def python_source(block):
    """A python block's code; a doctest-style block (>>> prompts) keeps only its code."""
    lines = block.text.splitlines()
    if any(line.startswith(">>>") for line in lines):
        return "\n".join(line[4:] if line.startswith((">>> ", "... ")) else
                         "" if line in (">>>", "...") else "" for line in lines) + "\n"
    return block.text


def bound_names(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
    return names


def module_names(tree):
    """Names a block binds at its top level (what a later block can use)."""
    names = set()

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            return  # their bodies bind local names
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp)):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.NamedExpr):
            names.add(node.target.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def free_names(tree):
    """Names a block reads but neither binds nor gets from builtins."""
    bound = bound_names(tree)
    used = {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return used - bound - set(dir(builtins)) - {"__file__", "__name__"}


def _import_attribute(module, name):
    """module.name, importing a submodule if need be; AttributeError if neither exists."""
    if hasattr(module, name):
        return getattr(module, name)
    if inspect.ismodule(module):
        full = f"{module.__name__}.{name}"
        try:
            return importlib.import_module(full)
        except ModuleNotFoundError as error:
            if error.name != full:
                raise
    raise AttributeError(name)


def resolve_dotted(name):
    """The object `sat_keras.a.b.c` names; raises ImportError / AttributeError."""
    parts = name.split(".")
    target = importlib.import_module(parts[0])
    for index, part in enumerate(parts[1:], start=1):
        try:
            target = _import_attribute(target, part)
        except AttributeError:
            raise AttributeError(f"{'.'.join(parts[:index])} has no attribute {part!r}") \
                from None
    return target


def _signature_problem(target, call):
    if any(isinstance(arg, ast.Starred) for arg in call.args) or \
            any(keyword.arg is None for keyword in call.keywords):
        return None
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    parameters = signature.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        keywords = {}
    else:
        keywords = {keyword.arg: None for keyword in call.keywords}
    try:
        signature.bind_partial(*[None] * len(call.args), **keywords)
    except TypeError as error:
        return str(error)
    return None


def check_python_tree(tree, path, first_line):
    """Errors in a parsed block's use of sat_keras: imports, attributes, call keywords."""
    errors, bindings = [], {}

    def report(node, message):
        errors.append(DocError(path, first_line + getattr(node, "lineno", 1), message))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "sat_keras":
                    continue
                try:
                    module = importlib.import_module(alias.name)
                except ImportError as error:
                    report(node, f"`import {alias.name}` fails: {error}")
                    continue
                if alias.asname:
                    bindings[alias.asname] = module
                else:
                    bindings["sat_keras"] = importlib.import_module("sat_keras")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "sat_keras":
            try:
                module = importlib.import_module(node.module)
            except ImportError as error:
                report(node, f"`from {node.module} import ...` fails: {error}")
                continue
            for alias in node.names:
                if alias.name == "*":
                    continue
                try:
                    bindings[alias.asname or alias.name] = _import_attribute(module, alias.name)
                except AttributeError:
                    report(node, f"`from {node.module} import {alias.name}`: "
                                 f"{node.module} has no {alias.name!r}")
    # Names the block rebinds are not the imported objects everywhere: left unchecked.
    rebound = {node.id for node in ast.walk(tree)
               if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    bindings = {name: value for name, value in bindings.items() if name not in rebound}

    resolved = {}

    def resolve(node):
        """The sat_keras object an expression names, or None when it is not one."""
        if id(node) in resolved:
            return resolved[id(node)]
        value = None
        if isinstance(node, ast.Name):
            value = bindings.get(node.id)
        elif isinstance(node, ast.Attribute):
            owner = resolve(node.value)
            if owner is not None:
                try:
                    value = _import_attribute(owner, node.attr)
                except AttributeError:
                    report(node, f"`{ast.unparse(node)}`: {_name_of(owner)} has no attribute "
                                 f"{node.attr!r}")
                    value = None
        resolved[id(node)] = value
        return value

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in resolved:
            resolve(node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            target = resolve(node.func)
            if target is not None and callable(target):
                problem = _signature_problem(target, node)
                if problem:
                    report(node, f"`{ast.unparse(node.func)}(...)`: {problem}")
    return errors


def _name_of(target):
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target))


def _ellipsis_placeholders(tree):
    """`...` standing for elided code (an argument or a value), not a stub's body."""
    found = []
    for node in ast.walk(tree):
        values = []
        if isinstance(node, ast.Call):
            values = list(node.args) + [keyword.value for keyword in node.keywords]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            values = [node.value]
        elif isinstance(node, (ast.List, ast.Tuple, ast.Dict)):
            values = [v for v in getattr(node, "elts", []) + getattr(node, "values", []) if v]
        found.extend(value for value in values
                     if isinstance(value, ast.Constant) and value.value is Ellipsis)
    return found


# ---------------------------------------------------------------- the checker


class DocsChecker:
    """Checks documents against the code. `parser`: sat_keras.cli.build_parser()."""

    def __init__(self, parser, root=REPOSITORY):
        self.root = pathlib.Path(root)
        self.parser = parser
        self.subcommands = _subparsers(parser)
        self._script_flags = {}

    # -- the CLI
    def all_cli_flags(self):
        return {flag for sub in self.subcommands.values() for action in sub._actions
                for flag in action.option_strings}

    def check_sat_keras(self, words, path, line, check_required=True):
        """Errors of one `sat-keras ...` command (words after `sat-keras`).

        `check_required`: flags the subcommand requires must be there (not for prose,
        which may name part of a command)."""
        errors = []

        def report(message):
            errors.append(DocError(path, line, message))

        words = [word for word in words if _clean(word) not in ("", "...", "|")]
        top_flags = {flag for action in self.parser._actions for flag in action.option_strings}
        position = 0
        while position < len(words) and _is_flag(words[position]):
            for flag in _flags_of(words[position]):
                if flag not in top_flags:
                    report(f"`sat-keras {flag}`: no such option before the subcommand")
            position += 1
        if position == len(words):
            return errors
        name = _clean(words[position])
        subparser = self.subcommands.get(name)
        if subparser is None:
            report(f"`sat-keras {name}`: no such subcommand (there are: "
                   f"{', '.join(sorted(self.subcommands))})")
            return errors
        actions = {flag: action for action in subparser._actions
                   for flag in action.option_strings}
        given = set()
        rest = words[position + 1:]
        for index, word in enumerate(rest):
            if not _is_flag(word):
                continue
            for flag in _flags_of(word):
                if flag not in actions:
                    report(f"`sat-keras {name} {flag}`: no such flag (sat-keras {name} "
                           "--help lists them)")
                    continue
                given.add(flag)
                action = actions[flag]
                values = None
                if "=" in _clean(word):
                    values = _clean(word).split("=", 1)[1]
                elif action.choices is not None and action.nargs is None and \
                        index + 1 < len(rest) and not _is_flag(rest[index + 1]):
                    values = _clean(rest[index + 1])
                if action.choices is not None and values is not None:
                    for value in values.split("|"):
                        if value not in action.choices and not PLACEHOLDER_WORD.match(value) \
                                and not value.startswith("$"):
                            report(f"`sat-keras {name} {flag} {value}`: not one of "
                                   f"{', '.join(map(str, action.choices))}")
        if check_required and not given & {"-h", "--help"} and "..." not in " ".join(words):
            for action in subparser._actions:
                if action.required and action.option_strings and \
                        not given & set(action.option_strings):
                    report(f"`sat-keras {name}` without {action.option_strings[0]}, which it "
                           "requires")
        return errors

    # -- python scripts
    def script_flags(self, script):
        """The option strings a script's argparse defines (read from its source), or None."""
        if script not in self._script_flags:
            flags = set()
            tree = ast.parse((self.root / script).read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        node.func.attr == "add_argument":
                    names = [arg.value for arg in node.args if isinstance(arg, ast.Constant)
                             and isinstance(arg.value, str) and arg.value.startswith("-")]
                    flags.update(names)
                    if any("BooleanOptionalAction" in ast.unparse(k.value)
                           for k in node.keywords if k.arg == "action"):
                        flags.update(f"--no-{n[2:]}" for n in names if n.startswith("--"))
            if flags or "argparse" in ast.unparse(tree):
                flags.update({"-h", "--help"})
            self._script_flags[script] = flags or None
        return self._script_flags[script]

    def check_python_command(self, words, path, line, directory=""):
        """`directory`: where a `cd` in the block went, relative to the repository (None:
        somewhere unknown, so scripts are not looked up)."""
        errors = []
        if len(words) < 2 or words[1].startswith("-"):
            if len(words) >= 3 and words[1] == "-m" and words[2].startswith("sat_keras"):
                try:
                    importlib.import_module(words[2])
                except ImportError as error:
                    errors.append(DocError(path, line, f"`python -m {words[2]}`: {error}"))
            return errors
        script = _clean(words[1])
        if not script.endswith(".py") or script.startswith(("/", "~", "$")) or \
                any(PLACEHOLDER_WORD.match(part) for part in script.split("/")) or \
                directory is None:
            return errors
        script = os.path.normpath(os.path.join(directory, script))
        if script.startswith(".."):
            return errors
        if not (self.root / script).is_file():
            errors.append(DocError(path, line, f"`python {script}`: no such script in the "
                                               "repository"))
            return errors
        known = self.script_flags(script)
        if known is None:
            return errors
        for word in words[2:]:
            if _is_flag(word):
                for flag in _flags_of(word):
                    if flag not in known:
                        errors.append(DocError(path, line, f"`python {script} {flag}`: no "
                                               f"such flag (the script's argparse has "
                                               f"{', '.join(sorted(known))})"))
        return errors

    # -- blocks
    def check_command_line(self, command_line, path, line, run=False, state=None):
        """Errors of one logical command line; `run`: the block will be executed.
        `state`: {"directory": ...}, the block's `cd`s so far (updated)."""
        errors = []
        state = {"directory": ""} if state is None else state
        for command in split_commands(command_line):
            try:
                words = command_words(command)
            except ValueError as error:
                errors.append(DocError(path, line, str(error)))
                continue
            if not words:
                continue
            program = os.path.basename(words[0])
            if program == "cd":
                target = words[1] if len(words) > 1 else "/"
                known = state["directory"] is not None and not target.startswith(("/", "~", "$"))
                state["directory"] = (os.path.normpath(os.path.join(state["directory"], target))
                                      if known else None)
                continue
            if program == "sat-keras":
                errors.extend(self.check_sat_keras(words[1:], path, line))
            elif _is_python(words[0]):
                errors.extend(self.check_python_command(words, path, line,
                                                        state["directory"]))
            else:
                continue
            if run and _is_synopsis(words):
                errors.append(DocError(path, line, "a synopsis ([optional] flags, a|b "
                                       "alternatives or ...) in a block the test runs: write "
                                       "a command that runs, or mark the block `<!-- "
                                       "docs-test: skip synopsis -->`"))
            elif run:
                for word in sorted(set(_unknown_placeholders(words[1:]))):
                    errors.append(DocError(path, line, f"unknown placeholder {word} in a "
                                           f"block the test runs (the test provides "
                                           f"{', '.join(PLACEHOLDERS)}): use one of them, a "
                                           "real value, or a skip marker"))
        return errors

    def check_block(self, block, earlier_definitions=()):
        """Errors of one block. `earlier_definitions`: names earlier python blocks bind."""
        run = execution_plan(block)[0]
        if block.language == "bash":
            errors = []
            if run and NEEDS_MARKER.search(block.text):
                errors.append(DocError(block.path, block.line, "this block needs what a plain "
                              f"CPU machine without network lacks "
                              f"({NEEDS_MARKER.search(block.text).group(0)}): mark it "
                              "`<!-- docs-test: skip REASON -->`"))
            state = {"directory": ""}
            for line, command_line in logical_lines(block):
                errors.extend(self.check_command_line(command_line, block.path, line, run=run,
                                                      state=state))
            return errors
        try:
            tree = ast.parse(python_source(block))
        except SyntaxError as error:
            return [DocError(block.path, block.line + (error.lineno or 1),
                             f"the python block does not parse: {error.msg}")]
        errors = check_python_tree(tree, block.path, block.line)
        if run:
            for node in _ellipsis_placeholders(tree):
                errors.append(DocError(block.path, block.line + node.lineno, "`...` stands for "
                              "elided code in a block the test runs: write it out, or mark "
                              "the block `<!-- docs-test: skip REASON -->`"))
            missing = sorted(free_names(tree) - set(earlier_definitions))
            if missing:
                errors.append(DocError(block.path, block.line, f"uses {', '.join(missing)}, "
                              "which neither this block nor an earlier python block of the "
                              "page defines"))
        return errors

    def check_inline(self, spans, path, flags_only_cli=False):
        """Inline code: `sat-keras ...` commands, `from sat_keras ...` imports, dotted
        `sat_keras.x.y` names; with `flags_only_cli`, a span that starts with a flag must
        be a flag of some subcommand."""
        errors, cli_flags = [], None
        for line, code in spans:
            if code.startswith("sat-keras ") or code == "sat-keras":
                for command in split_commands(code):
                    try:
                        words = command_words(command)
                    except ValueError:
                        continue
                    if words and words[0] == "sat-keras":
                        errors.extend(self.check_sat_keras(words[1:], path, line,
                                                           check_required=False))
            elif re.match(r"^(from|import) sat_keras\b", code):
                try:
                    tree = ast.parse(code)
                except SyntaxError:
                    continue
                errors.extend(check_python_tree(tree, path, line - 1))
            elif re.fullmatch(r"sat_keras(\.[A-Za-z_]\w*)+(\(\))?", code):
                try:
                    resolve_dotted(code.removesuffix("()"))
                except (ImportError, AttributeError) as error:
                    errors.append(DocError(path, line, f"`{code}` does not resolve: {error}"))
            elif flags_only_cli and re.match(r"^--(\[no-\])?[a-z0-9][a-z0-9-]*\*?(\s|$)", code):
                # kebab-case, as every sat-keras flag; `--scst-*` names a family
                cli_flags = cli_flags if cli_flags is not None else self.all_cli_flags()
                for flag in _flags_of(code.split()[0]):
                    if flag.endswith("*") and any(known.startswith(flag[:-1])
                                                  for known in cli_flags):
                        continue
                    if flag not in cli_flags:
                        errors.append(DocError(path, line, f"`{flag}` is no flag of any "
                                               "sat-keras subcommand"))
        return errors

    def check_markdown(self, text, path):
        """Every error of one document's text; `path` names it in the errors."""
        blocks, prose, errors = parse_markdown(text, path)
        defined = set()
        for block in blocks:
            errors.extend(self.check_block(block, defined))
            if block.language == "python" and not block.skipped:
                try:
                    defined |= module_names(ast.parse(python_source(block)))
                except SyntaxError:
                    pass
        errors.extend(self.check_inline(inline_code(prose), path,
                                        flags_only_cli=path.endswith("docs/cli.md")))
        return sorted(errors, key=lambda error: (error.path, error.line))

    def check_file(self, relative):
        return self.check_markdown((self.root / relative).read_text(encoding="utf-8"), relative)

    def cli_reference_errors(self, text, path="docs/cli.md"):
        """Every subcommand and every flag of every subcommand appears in the CLI page."""
        errors = []
        for name, subparser in sorted(self.subcommands.items()):
            if not re.search(rf"sat-keras {re.escape(name)}\b", text):
                errors.append(DocError(path, 1, f"the subcommand `sat-keras {name}` is not "
                                                "documented"))
            for action in subparser._actions:
                flags = [flag for flag in action.option_strings if flag.startswith("--")]
                if not flags or "--help" in flags:
                    continue
                wanted = flags[0]
                forms = [wanted, f"--[no-]{wanted[2:]}"]
                if not any(re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text)
                           for form in forms):
                    errors.append(DocError(path, 1, f"`sat-keras {name} {wanted}` is not "
                                                    "documented"))
        return errors


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def relative_link_errors(text, path, root=REPOSITORY):
    """Markdown links to repository files that do not exist."""
    errors = []
    blocks_free = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(r"^\s*(`{3,}|~{3,})", line):
            in_fence = not in_fence
            continue
        if not in_fence:
            blocks_free.append((number, line))
    base = (pathlib.Path(root) / path).parent
    for number, line in blocks_free:
        for match in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            target = match.group(1).split("#", 1)[0]
            if not target or re.match(r"^[a-z][\w+.-]*:", target):
                continue
            if not (base / target).exists():
                errors.append(DocError(path, number, f"the link target {target} does not "
                                                     "exist"))
    return errors


# ---------------------------------------------------------------- execution


def execution_plan(block):
    """(True, None) when the test executes the block, else (False, the reason)."""
    if block.skipped:
        return False, f"marked: {block.skip_reason or '(no reason)'}"
    if block.language == "bash":
        for pattern, reason in NOT_EXECUTED:
            if pattern.search(block.text):
                return False, reason
    return True, None


def needs_server(block):
    """The block talks to a local server on 8500/8501 and does not start one itself."""
    return bool(SERVER_ADDRESS.search(block.text)) and not re.search(
        r"\bsat-keras\s+serve\b|LocalServer\(", block.text)


def run_dir_is_written(block):
    """The block writes RUN_DIR (a command's output folder): the test leaves it absent."""
    for _, command_line in logical_lines(block) if block.language == "bash" else []:
        for command in split_commands(command_line):
            try:
                words = command_words(command)
            except ValueError:
                continue
            for flag, value in zip(words, words[1:]):
                if flag in OUTPUT_FLAGS and value.split("/")[0] == "RUN_DIR":
                    return True
    return False


def tiny_arguments(words, accepted=None):
    """What the tiny-run rule appends to a command (words from the program name on).

    `accepted`: {"demo" / "train" / "examples/x.py": the TINY flags it accepts}; default:
    what the test passes in DOCS_TEST_TINY_ACCEPTED."""
    accepted = _TINY_ACCEPTED if accepted is None else accepted
    if not words:
        return []
    program = os.path.basename(words[0])
    if program == "sat-keras":
        if len(words) < 2 or words[1] not in ("demo", "train"):
            return []
        known = accepted.get(words[1], ())
    elif _is_python(program) and len(words) > 1 and words[1].endswith(".py"):
        known = accepted.get(os.path.normpath(words[1]), ())
    else:
        return []
    dataset = "synthetic"
    for flag, value in zip(words, words[1:]):
        if flag == "--dataset":
            dataset = value
        elif flag.startswith("--dataset="):
            dataset = flag.split("=", 1)[1]
    appended = []
    for flag, (value, when) in TINY.items():
        if flag not in known:
            continue
        if when == "if-given" and not any(w == flag or w.startswith(flag + "=") for w in words):
            continue
        if when == "synthetic" and dataset != "synthetic":
            continue
        appended += [flag, value]
    return appended


# Filled from the environment by the shim (the test computes it from the parsers).
_TINY_ACCEPTED = json.loads(os.environ.get("DOCS_TEST_TINY_ACCEPTED", "{}"))


class TinyKeywords(ast.NodeTransformer):
    """The tiny-run rule for python: integer literals of TINY's keywords lowered."""

    values = {flag[2:].replace("-", "_"): int(value) for flag, (value, _) in TINY.items()}

    def visit_keyword(self, node):
        if node.arg in self.values and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, int) and node.value.value > self.values[node.arg]:
            node.value = ast.copy_location(ast.Constant(self.values[node.arg]), node.value)
        return self.generic_visit(node)


def _serve_ports(arguments):
    ports = {"--port": 8500, "--rest-port": 8501}
    for flag, value in zip(arguments, arguments[1:]):
        if flag in ports:
            ports[flag] = int(value)
    for word in arguments:
        for flag in ports:
            if word.startswith(flag + "="):
                ports[flag] = int(word.split("=", 1)[1])
    return [port for port in ports.values() if port]


def _work_dir():
    """Where the test keeps the servers' pid file: the block's directory at its start."""
    return os.environ.get("DOCS_TEST_WORK", os.getcwd())


def _start_server(arguments, work_dir, seconds=300):
    """`sat-keras serve ARGUMENTS` in the background (in the current directory); returns
    when its ports answer. Its pid goes to `work_dir`/.docs-test-servers."""
    executable = str(pathlib.Path(sys.executable).parent / "sat-keras")
    log_path = pathlib.Path(work_dir) / f".docs-test-server-{len(os.listdir(work_dir))}.log"
    log = open(log_path, "wb")  # noqa: SIM115 (the server writes it after we return)
    process = subprocess.Popen([executable, "serve", *arguments], stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    with open(pathlib.Path(work_dir) / ".docs-test-servers", "a") as pids:
        pids.write(f"{process.pid}\n")
    deadline = time.monotonic() + seconds
    waiting = _serve_ports(arguments)
    while waiting:
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_bytes()[-3000:].decode(errors="replace")
            sys.stderr.write(f"docs-test: `sat-keras serve {' '.join(arguments)}` did not come "
                             f"up (exit {process.poll()}):\n{tail}\n")
            return 1
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", waiting[0])) == 0:
                waiting.pop(0)
                continue
        time.sleep(0.5)
    time.sleep(1)
    if process.poll() is not None:  # another process holds the ports
        tail = log_path.read_bytes()[-3000:].decode(errors="replace")
        sys.stderr.write(f"docs-test: `sat-keras serve` exited (exit {process.returncode}) while "
                         f"its ports answered: are they taken?\n{tail}\n")
        return 1
    print(f"docs-test: sat-keras serve is up ({' '.join(arguments) or 'default flags'})",
          file=sys.stderr)
    return 0


def stop_servers(work_dir):
    pid_file = pathlib.Path(work_dir) / ".docs-test-servers"
    if not pid_file.exists():
        return
    for pid in pid_file.read_text().split():
        try:
            os.killpg(int(pid), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    time.sleep(1)
    for pid in pid_file.read_text().split():
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    pid_file.unlink()


BASH_PRELUDE = """\
set -eo pipefail
sat-keras() { "$DOCS_TEST_PYTHON" "$DOCS_TEST_SHIM" shim sat-keras "$@"; }
python() { "$DOCS_TEST_PYTHON" "$DOCS_TEST_SHIM" shim python "$@"; }
python3() { "$DOCS_TEST_PYTHON" "$DOCS_TEST_SHIM" shim python "$@"; }
trap '"$DOCS_TEST_PYTHON" "$DOCS_TEST_SHIM" stop-servers' EXIT
"""


def shim(words):
    """What an executed bash block's `sat-keras` and `python` run: the tiny-run rule
    applied, and `sat-keras serve` started in the background until its ports answer."""
    work_dir = _work_dir()
    program = words[0]
    if program == "sat-keras" and len(words) > 1 and words[1] == "serve":
        return _start_server(words[2:], work_dir)
    arguments = words + tiny_arguments(words)
    if program == "sat-keras":
        executable = str(pathlib.Path(sys.executable).parent / "sat-keras")
        os.execv(executable, [executable, *arguments[1:]])
    os.execv(sys.executable, [sys.executable, *arguments[1:]])


def run_block(path, line, source, namespace):
    """Runs one python block in `namespace`, with the tiny-run rule and its page's lines."""
    tree = TinyKeywords().visit(ast.parse(source))
    ast.increment_lineno(tree, line)
    ast.fix_missing_locations(tree)
    exec(compile(tree, path, "exec"), namespace)  # noqa: S102 (documentation, run)


def python_worker():
    """A page's python interpreter: runs the blocks it reads from stdin (one JSON line
    each: path, line, source, stdout and stderr files) in one namespace, as a reader who
    follows the page does, and answers each with a JSON line {"status": 0 or 1}."""
    import contextlib
    import traceback

    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray C-level output goes to the worker's log, not the protocol
    namespace = {"__name__": "__main__"}
    for request_line in sys.stdin:
        request = json.loads(request_line)
        with open(request["stdout"], "w", encoding="utf-8") as out, \
                open(request["stderr"], "w", encoding="utf-8") as err, \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run_block(request["path"], request["line"], request["source"], namespace)
                status = 0
            except (Exception, SystemExit):
                traceback.print_exc()
                status = 1
        protocol.write(json.dumps({"status": status}) + "\n")
    return 0


def _main(argv):
    command = argv[0]
    if command == "shim":
        return shim(argv[1:])
    if command == "stop-servers":
        stop_servers(_work_dir())
        return 0
    if command == "start-server":
        return _start_server(argv[1:], _work_dir())
    if command == "python-worker":
        return python_worker()
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
