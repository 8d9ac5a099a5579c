"""Everything a user reads is checked against the code, and its code blocks are run.

Documents: README.md, CONTRIBUTING.md, docs/**/*.md, saved_models/**/README.md (found
by glob). Blocks: fenced ```python / ```py and ```bash / ```sh / ```shell / ```console.
Errors name the file and line (`README.md:47: ...`); the checker is tests/docs_blocks.py.

Default suite (static, a few seconds):
1. every python block parses;
2. every `import sat_keras...` / `from sat_keras... import X` resolves, and so do the
   attributes used on what it imports (`ShowAttendTell.from_preset`) and the keyword
   arguments of calls to it; in the prose, inline `sat_keras.x.y` names and
   `from sat_keras import X` spans resolve;
3. every `sat-keras SUBCOMMAND ...` line (in blocks, and inline `sat-keras ...` spans)
   names a subcommand and flags of it, from `sat_keras.cli.build_parser()`: `\\`
   continuations are joined, comments dropped, `[--optional]` brackets, `a|b`
   alternatives and `--[no-]x` understood, `&&`, `;` and pipes split; a flag with
   choices gets its documented values checked; a command in a block must carry the
   flags its subcommand requires. In docs/cli.md an inline span that starts with a
   flag (`--rest-port 0`) must be a flag of some subcommand, and every flag of every
   subcommand must appear in docs/cli.md (a flag added without docs fails);
4. every `python SCRIPT.py --flag` names a script of the repository and flags that its
   argparse defines (read from its source: no process is started);
5. a block preceded by `<!-- docs-test: skip REASON -->` (the last non-blank line
   before the fence) is not executed; REASON must be given, and checks 1-4 still
   apply. A marker that is not followed by a block, or another `docs-test:` word,
   is an error;
and, for blocks that will be executed: no synopsis ([optional], a|b, ...), no
placeholder but the three below, no `...` standing for code, no name that neither the
block nor an earlier python block of the page defines, and a skip marker on any block
that needs Docker, a GPU/TPU or a download (`docker`, `nvidia-smi`, `--download`,
`--tpu`, `gcloud`). Relative links must point at files that exist.

Slow suite (`pytest -m slow tests/test_docs.py`): every block that is not skip-marked
is executed, one test per block (id `FILE:LINE-LANGUAGE`). A page is followed as a reader
follows it: its blocks run in page order in one temporary directory (the page's), and
its python blocks in one interpreter, so a block may use the files and names of the
blocks above it. A block selected alone (-k) first runs the executed blocks above it.
- Which bash blocks run: all but those that set up an environment (pip install, venv,
  activate, git clone, apt-get, conda: the test runs inside such an environment) and
  those that run the tests or the linter (pytest, ruff, .ci/run: recursion). Both
  kinds are still checked statically.
- Placeholders (PLACEHOLDERS): a block runs verbatim in a directory where each
  placeholder it names exists under that name (made when a block first needs it; no
  text is substituted): `PHOTO.jpg` is the first Flickr8k dev photo from ../shared
  (skipped without it; CI fails instead, tests/helpers.shared_path);
  `DATA_DIR` is a 6-photo Flickr8k layout (train 4, dev 2 photos from ../shared) when
  the block mentions flickr8k, else 160 synthetic images (`generate_synthetic(DATA_DIR,
  num_images=160, seed=0)`); `RUN_DIR` is absent when the block writes it (it follows
  --output-dir, --work-dir or --output), else a copy of a run that `sat-keras train
  --dataset synthetic --epochs 1 --num-images 160` wrote. The directory also holds
  saved_models/ (hard links, when a block names it), and links to examples/,
  benchmarks/ and docs/.
- Tiny runs (docs_blocks.TINY): `sat-keras` and `python` in bash blocks are shell
  functions that append `--epochs 1`, `--num-images 160` (synthetic data only) and
  `--scst-epochs 1` (where given) to every command that accepts them; argparse keeps
  the last value. In python blocks, the integer literals of the keyword arguments
  `epochs`, `num_images` and `scst_epochs` are lowered to the same values.
- Servers: `sat-keras serve` in a block starts in the background and the block goes on
  once its ports answer; a block that talks to localhost:8500/8501 without starting a
  server gets `sat-keras serve` (the defaults) first. Servers stop when the block ends.
- Tracebacks of python blocks carry the page's file name and line numbers.
A failing block fails its test with the block's file:line, its text and stderr's tail.
"""

import ast
import json
import os
import pathlib
import select
import shutil
import subprocess
import sys

import pytest
from docs_blocks import BASH_PRELUDE
from docs_blocks import NOT_EXECUTED
from docs_blocks import REPOSITORY
from docs_blocks import TINY
from docs_blocks import DocsChecker
from docs_blocks import TinyKeywords
from docs_blocks import doc_files
from docs_blocks import execution_plan
from docs_blocks import logical_lines
from docs_blocks import needs_server
from docs_blocks import parse_markdown
from docs_blocks import python_source
from docs_blocks import relative_link_errors
from docs_blocks import run_dir_is_written
from docs_blocks import stop_servers
from docs_blocks import tiny_arguments
from helpers import FLICKR8K_DIR
from helpers import flickr8k_subset
from helpers import shared_path

from sat_keras.cli import build_parser

DOCUMENTS = doc_files()
SHIM = str(pathlib.Path(__file__).resolve().with_name("docs_blocks.py"))
TINY_IMAGES = int(TINY["--num-images"][0])
BLOCK_SECONDS = 1200


@pytest.fixture(scope="module")
def checker():
    return DocsChecker(build_parser())


def _report(errors):
    return "\n" + "\n".join(map(str, errors))


# ---------------------------------------------------------------- static (default suite)


def test_the_documents_hold_code_to_check():
    assert "README.md" in DOCUMENTS
    blocks, _, _ = parse_markdown((REPOSITORY / "README.md").read_text(encoding="utf-8"),
                                  "README.md")
    languages = {block.language for block in blocks}
    assert {"bash", "python"} <= languages, f"README.md has blocks in {languages} only"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_agrees_with_the_code(checker, document):
    errors = checker.check_file(document)
    assert not errors, _report(errors)


def test_every_cli_flag_is_in_the_cli_reference(checker):
    page = REPOSITORY / "docs" / "cli.md"
    if not page.exists():
        pytest.skip("docs/cli.md does not exist")
    errors = checker.cli_reference_errors(page.read_text(encoding="utf-8"))
    assert not errors, _report(errors)


def test_relative_links_point_at_files():
    errors = [error for document in DOCUMENTS for error in relative_link_errors(
        (REPOSITORY / document).read_text(encoding="utf-8"), document)]
    assert not errors, _report(errors)


# The acceptance checks of issue #36.

def test_readme_is_a_front_page():
    lines = (REPOSITORY / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines (at most 300)"


def test_license_exists():
    assert (REPOSITORY / "LICENSE").is_file()


def test_docs_has_pages():
    pages = sorted((REPOSITORY / "docs").glob("**/*.md"))
    assert len(pages) >= 5, f"docs/ holds {len(pages)} pages: {pages}"


@pytest.mark.parametrize("model", ["flickr8k", "shapes"])
def test_shipped_models_have_cards(model):
    assert (REPOSITORY / "saved_models" / model / "README.md").is_file()


# ---------------------------------------------------------------- the checker itself

GOOD_SAMPLE = """\
# A page

Inline: `sat_keras.cli.build_parser`, `from sat_keras import ShowAttendTell`,
`sat-keras serve --rest-port 0` and a span over two lines: `sat-keras
caption --beam-size 3`.

```bash
sat-keras caption PHOTO.jpg --beam-size 3 --suppress-unknown   # a comment
sat-keras serve --port 8500 \\
    --rest-port 0 && echo done
python examples/train_synthetic.py --output-dir RUN_DIR --epochs 1
cd examples && python train_synthetic.py --epochs 1 && cd ..
```

<!-- docs-test: skip a synopsis -->
```bash
sat-keras train --dataset synthetic --data-dir DATA_DIR --output-dir RUN_DIR [--epochs N] \\
    [--strategy default|mirrored] [--scst-epochs N] [--scst-baseline mean|greedy] \\
    [--scst-score-end|--no-scst-score-end]
sat-keras caption IMAGE... [--model MODEL] [--[no-]suppress-unknown]
```

```console
$ sat-keras caption PHOTO.jpg
PHOTO.jpg: a dog runs on the grass
```

```python
from sat_keras import ShowAttendTell
from sat_keras.models.presets import preset_names

names = preset_names()
```

```python
print(names, ShowAttendTell.from_preset)
```

```text
sat-keras anything --goes here
```
"""

BAD_SAMPLES = [
    ("```python\nfrom sat_keras import NoSuchThing\n```\n", 2, "has no 'NoSuchThing'"),
    ("```python\nimport sat_keras.no_such_module\n```\n", 2, "fails"),
    ("```python\nfrom sat_keras import ShowAttendTell\n\nShowAttendTell.no_such_method()\n```\n",
     4, "has no attribute 'no_such_method'"),
    ("```python\nfrom sat_keras.models.presets import preset_names\n"
     "preset_names(no_such_keyword=1)\n```\n", 3, "unexpected keyword"),
    ("text\n\n```python\nx = (1,\n```\n", 4, "does not parse"),
    ("```python\nprint(model)\n```\n", 1, "uses model"),
    ("```python\nfrom sat_keras import ShowAttendTell\n"
     "ShowAttendTell.from_preset(...)\n```\n", 3, "elided"),
    ("```bash\nsat-keras caption PHOTO.jpg --no-such-flag\n```\n", 2, "no such flag"),
    ("```sh\nsat-keras no-such-command --x\n```\n", 2, "no such subcommand"),
    ("```bash\necho start\nsat-keras train --data-dir DATA_DIR \\\n"
     "    --output-dir RUN_DIR --bogus-flag 1\n```\n", 3, "--bogus-flag"),
    ("<!-- docs-test: skip synopsis -->\n```bash\nsat-keras serve [--port 8500] [--bogus]\n```\n",
     3, "--bogus"),
    ("```bash\nsat-keras evaluate --model RUN_DIR --data-dir DATA_DIR --tokenization bogus\n"
     "```\n", 2, "not one of"),
    ("```bash\nsat-keras export --model RUN_DIR\n```\n", 2, "requires"),
    ("```bash\nsat-keras serve [--port 8500]\n```\n", 2, "synopsis"),
    ("```bash\nsat-keras caption IMAGE --model MODEL\n```\n", 2, "unknown placeholder IMAGE"),
    ("```bash\necho a && python examples/no_such_script.py\n```\n", 2, "no such script"),
    ("```bash\ncd benchmarks\npython train_synthetic.py\n```\n", 3, "no such script"),
    ("```bash\npython examples/train_synthetic.py --bogus 1\n```\n", 2, "no such flag"),
    ("```console\n$ sat-keras caption PHOTO.jpg --bogus\nPHOTO.jpg: a dog\n```\n", 2,
     "no such flag"),
    ("<!-- docs-test: skip -->\n```bash\necho\n```\n", 1, "without a reason"),
    ("<!-- docs-test: skip   -->\n```python\nx = 1\n```\n", 1, "without a reason"),
    ("<!-- docs-test: skip a reason -->\nsome prose\n", 1, "not followed by a code block"),
    ("<!-- docs-test: run -->\n```bash\necho hi\n```\n", 1, "unknown docs-test marker"),
    ("```bash\ndocker run -p 8501:8501 tensorflow/serving\n```\n", 1, "mark it"),
    ("See `sat_keras.no_such_thing.x`.\n", 1, "does not resolve"),
    ("Line one.\nRun `sat-keras serve --no-such-port 1`.\n", 2, "no such flag"),
    ("```python\nx = 1\n", 1, "never closed"),
]


def test_a_correct_sample_has_no_errors(checker):
    errors = checker.check_markdown(GOOD_SAMPLE, "sample.md")
    assert not errors, _report(errors)


@pytest.mark.parametrize("text, line, fragment", BAD_SAMPLES,
                         ids=[fragment for _, _, fragment in BAD_SAMPLES])
def test_the_checker_reports_each_kind_of_error(checker, text, line, fragment):
    errors = checker.check_markdown(text, "sample.md")
    assert any(fragment in error.message for error in errors), _report(errors)
    assert [error.line for error in errors if fragment in error.message][0] == line, \
        _report(errors)


def test_inline_flags_of_the_cli_page_must_exist(checker):
    errors = checker.check_markdown("`--rest-port 0`, `--scst-*`, `--xla_cpu_flag` (TF Serving's) "
                                    "and `--no-such-flag`.\n", "docs/cli.md")
    assert [error.message for error in errors] == [
        "`--no-such-flag` is no flag of any sat-keras subcommand"]


def test_a_flag_missing_from_the_cli_page_is_reported(checker):
    errors = checker.cli_reference_errors("sat-keras serve --model-dir --port\n")
    messages = [error.message for error in errors]
    assert "`sat-keras serve --rest-port` is not documented" in messages
    assert "the subcommand `sat-keras train` is not documented" in messages
    assert not any("--model-dir" in message for message in messages)


def test_relative_links_are_checked():
    text = "[ok](README.md) [web](https://x.org/a.md) [gone](docs/no_such_page.md#x)\n"
    errors = relative_link_errors(text, "README.md")
    assert [error.message for error in errors] == [
        "the link target docs/no_such_page.md does not exist"]


def test_the_execution_rules():
    blocks, _, _ = parse_markdown(
        "```bash\npip install -e .\n```\n\n```bash\npytest -n auto\n```\n\n"
        "<!-- docs-test: skip needs Docker -->\n```bash\ndocker run x\n```\n\n"
        "```bash\nsat-keras train --data-dir DATA_DIR --output-dir RUN_DIR\n"
        "curl localhost:8501/v1/models/flickr8k\n```\n\n"
        "```python\nmodel = 1\n```\n", "sample.md")
    plans = [execution_plan(block) for block in blocks]
    assert plans[0] == (False, NOT_EXECUTED[0][1]) and plans[1] == (False, NOT_EXECUTED[1][1])
    assert plans[2] == (False, "marked: needs Docker")
    assert plans[3] == (True, None) and plans[4] == (True, None)
    assert run_dir_is_written(blocks[3]) and needs_server(blocks[3])
    assert not needs_server(blocks[4])


def test_the_tiny_run_rule(checker):
    accepted = _tiny_accepted(checker)
    assert tiny_arguments(["sat-keras", "demo", "--epochs", "30"], accepted) == [
        "--epochs", "1", "--num-images", TINY["--num-images"][0]]
    assert tiny_arguments(["sat-keras", "train", "--dataset", "flickr8k", "--scst-epochs", "3"],
                          accepted) == ["--epochs", "1", "--scst-epochs", "1"]
    assert tiny_arguments(["sat-keras", "caption", "PHOTO.jpg"], accepted) == []
    assert tiny_arguments(["python", "./examples/train_synthetic.py"], accepted) == [
        "--epochs", "1"]
    tree = TinyKeywords().visit(ast.parse("model.fit(data, epochs=12)\nrun(num_images=3)"))
    assert ast.unparse(tree) == "model.fit(data, epochs=1)\nrun(num_images=3)"


# ---------------------------------------------------------------- execution (slow suite)


def _all_blocks():
    blocks = []
    for document in DOCUMENTS:
        found, _, _ = parse_markdown((REPOSITORY / document).read_text(encoding="utf-8"),
                                     document)
        blocks.extend(found)
    return blocks


BLOCKS = _all_blocks()
_PAGES = {}  # document -> its working directory and the lines of the blocks run there


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory of `sat-keras train` on TINY_IMAGES synthetic images, 1 epoch."""
    root = tmp_path_factory.mktemp("docs_tiny_run")
    result = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "sat-keras"), "train", "--dataset",
         "synthetic", "--data-dir", str(root / "data"), "--output-dir", str(root / "run"),
         "--epochs", "1", "--num-images", str(TINY_IMAGES)],
        capture_output=True, text=True, timeout=BLOCK_SECONDS, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run"


def _tiny_accepted(checker):
    accepted = {}
    for name in ("demo", "train"):
        flags = {flag for action in checker.subcommands[name]._actions
                 for flag in action.option_strings}
        accepted[name] = sorted(flags & set(TINY))
    for folder in ("examples", "benchmarks"):
        for script in sorted((REPOSITORY / folder).glob("*.py")):
            relative = script.relative_to(REPOSITORY).as_posix()
            accepted[relative] = sorted((checker.script_flags(relative) or set()) & set(TINY))
    return accepted


def _page(document, tmp_path_factory):
    """The page's working directory, made once: its blocks run there in page order."""
    for other, page in _PAGES.items():  # one page's interpreter at a time
        if other != document and page.get("python"):
            page["python"].stop()
            page["python"] = None
    if document not in _PAGES:
        work = tmp_path_factory.mktemp("docs_page") / "work"
        work.mkdir()
        for name in ("examples", "benchmarks", "docs"):
            if (REPOSITORY / name).exists():
                (work / name).symlink_to(REPOSITORY / name)
        _PAGES[document] = {"dir": work, "ran": {}, "provided_run_dir": False, "python": None}
    return _PAGES[document]


def _link_or_copy(source, destination):
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _provide_placeholders(block, page, request):
    """The placeholders the block names, made in the page's directory if missing."""
    work = page["dir"]
    if "saved_models" in block.text and not (work / "saved_models").exists():
        shutil.copytree(REPOSITORY / "saved_models", work / "saved_models",
                        copy_function=_link_or_copy)
    if "PHOTO.jpg" in block.text and not (work / "PHOTO.jpg").exists():
        shared_path(FLICKR8K_DIR)
        first = (FLICKR8K_DIR / "Flickr_8k.devImages.txt").read_text().split()[0]
        shutil.copyfile(FLICKR8K_DIR / "Flicker8k_Dataset" / first, work / "PHOTO.jpg")
    if "DATA_DIR" in block.text:
        data_dir = work / "DATA_DIR"
        flickr8k = "flickr8k" in block.text.lower()
        if data_dir.exists() and (data_dir / "Flickr8k.token.txt").exists() != flickr8k:
            shutil.rmtree(data_dir)  # the other kind, made for an earlier block
        if not data_dir.exists() and flickr8k:
            shared_path(FLICKR8K_DIR)
            flickr8k_subset(data_dir, train=4, dev=2)
        elif not data_dir.exists():
            from sat_keras.data import generate_synthetic

            generate_synthetic(str(data_dir), num_images=TINY_IMAGES, seed=0)
    if "RUN_DIR" in block.text:
        run_dir = work / "RUN_DIR"
        if run_dir_is_written(block):
            if page["provided_run_dir"]:
                shutil.rmtree(run_dir)  # the test's, not a block's: the block writes its own
                page["provided_run_dir"] = False
        elif not run_dir.exists():
            shutil.copytree(request.getfixturevalue("tiny_run"), run_dir)
            page["provided_run_dir"] = True


class PythonWorker:
    """The page's python interpreter (docs_blocks.python_worker), kept between its blocks."""

    def __init__(self, work, environment):
        self.log = work.parent / "python-worker.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, SHIM, "python-worker"], cwd=work, env=environment,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)

    def run(self, block, scratch):
        out, err = scratch / f"python-{block.line}.out", scratch / f"python-{block.line}.err"
        request = {"path": block.path, "line": block.line, "source": python_source(block),
                   "stdout": str(out), "stderr": str(err)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], BLOCK_SECONDS)
        answer = self.process.stdout.readline() if ready else ""
        status = json.loads(answer)["status"] if answer else \
            ("timeout" if not ready else "the interpreter died")
        if not answer:
            self.stop()
        stderr = err.read_text(errors="replace") if err.exists() else ""
        if status != 0 and not stderr.strip():
            stderr = self.log.read_text(errors="replace")
        return status, out.read_text(errors="replace") if out.exists() else "", stderr

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.alive():
            self.process.kill()
        self.process.wait()


@pytest.fixture(scope="session")
def pages():
    """document -> its working directory, python interpreter and the blocks run there."""
    yield _PAGES
    for page in _PAGES.values():
        if page.get("python"):
            page["python"].stop()
        stop_servers(page["dir"])


def _bash_body(block):
    if block.fence_language == "console":
        return "\n".join(command for _, command in logical_lines(block)) + "\n"
    return block.text


def _execute(block, page, checker, request):
    """Runs one block in its page's directory: (exit status, stdout, stderr)."""
    _provide_placeholders(block, page, request)
    work = page["dir"]
    environment = dict(
        os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}"
        f"{os.environ.get('PATH', '')}", DOCS_TEST_PYTHON=sys.executable, DOCS_TEST_SHIM=SHIM,
        DOCS_TEST_TINY_ACCEPTED=json.dumps(_tiny_accepted(checker)), DOCS_TEST_WORK=str(work),
        MPLBACKEND="Agg",
        TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    scratch = work.parent
    try:
        if needs_server(block):
            started = subprocess.run([sys.executable, SHIM, "start-server"], cwd=work,
                                     env=environment, capture_output=True, text=True,
                                     timeout=BLOCK_SECONDS, check=False)
            if started.returncode:
                return started.returncode, started.stdout, started.stderr
        if block.language == "python":
            if page["python"] is None or not page["python"].alive():
                page["python"] = PythonWorker(work, environment)
            return page["python"].run(block, scratch)
        script = scratch / f"block-{block.line}.sh"
        script.write_text(BASH_PRELUDE + _bash_body(block), encoding="utf-8")
        try:
            result = subprocess.run(["bash", str(script)], cwd=work, env=environment,
                                    capture_output=True, text=True, timeout=BLOCK_SECONDS,
                                    check=False)
        except subprocess.TimeoutExpired as error:
            stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) \
                else (error.stderr or "")
            return "timeout", "", f"ran past {BLOCK_SECONDS} s\n{stderr}"
    finally:
        stop_servers(work)
    return result.returncode, result.stdout, result.stderr


def _failure(block, outcome):
    status, stdout, stderr = outcome
    return (f"{block.where} ({block.fence_language}) failed (exit {status})"
            f"\n--- the block\n{block.text}--- stderr tail\n{stderr[-3000:]}"
            f"\n--- stdout tail\n{stdout[-1500:]}")


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.where}-{b.fence_language}" for b in BLOCKS])
def test_block_runs(block, checker, pages, tmp_path_factory, request):
    run, reason = execution_plan(block)
    if not run:
        pytest.skip(f"{block.where} is not executed: {reason}")
    page = _page(block.path, tmp_path_factory)
    for earlier in BLOCKS:  # a page is followed top to bottom: run what this one follows
        if earlier.path != block.path or earlier.line >= block.line or \
                earlier.line in page["ran"] or not execution_plan(earlier)[0]:
            continue
        outcome = _execute(earlier, page, checker, request)
        page["ran"][earlier.line] = outcome[0] == 0
        if outcome[0] != 0:
            pytest.fail(f"{block.where} follows {earlier.where}, which failed when run "
                        f"first:\n{_failure(earlier, outcome)}")
    outcome = _execute(block, page, checker, request)
    page["ran"][block.line] = outcome[0] == 0
    assert outcome[0] == 0, _failure(block, outcome)
