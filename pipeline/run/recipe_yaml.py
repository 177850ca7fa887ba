"""Recipe text -> plain data, refusing what PyYAML would accept silently or choke on.

PyYAML keeps the last of two equal keys without a word, so a recipe with `lr:` twice trains with the second; it
expands aliases by reference, so 547 bytes of nested aliases (the "billion laughs") load in a millisecond and then
make every walk over the data (fingerprints, stage references) visit 10^9 nodes. Both are refused here, on the
composed node graph, before any Python object is built: duplicate keys with their key path, and documents whose
alias expansion passes MAX_NODES.
"""

from __future__ import annotations

from pathlib import Path

import yaml

# The largest shipped recipe expands to about 400 nodes; 100,000 leaves room for long inline lists (a benchmark's
# problems) while a billion-laughs file is refused after a few hundred node visits.
MAX_NODES = 100_000
_MERGE = "tag:yaml.org,2002:merge"


class YamlProblem(ValueError):
    """(where, problem, fix): `where` is a key path like stages.sft.trainer, or 'line N'."""

    def __init__(self, where: str, problem: str, fix: str):
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}. Fix: {fix}")


def read_text(path: str) -> str:
    """The file's text; YamlProblem for a missing file, a folder, or bytes that are not UTF-8 text."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise YamlProblem("(file)", "no such recipe file", "give the path of a .yaml recipe") from None
    except IsADirectoryError:
        raise YamlProblem("(file)", "is a folder, not a recipe file", "give the path of a .yaml recipe file") from None
    except OSError as error:
        raise YamlProblem("(file)", f"cannot read it ({error.strerror})", "check the path and its permissions") \
            from None
    if b"\x00" in data:
        raise YamlProblem("(file)", "is a binary file, not YAML text", "give the path of a .yaml recipe")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise YamlProblem(f"line {line}", f"byte {error.start} is not UTF-8 text", "save the recipe as UTF-8") \
            from None


def parse(text: str):
    """Plain data from YAML text (safe types only); YamlProblem for bad syntax, duplicate keys or an alias bomb."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, "", {})
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(yaml)"
        raise YamlProblem(where, f"invalid YAML: {getattr(error, 'problem', None) or error}",
                          "fix the YAML syntax") from None
    except RecursionError:
        raise YamlProblem("(yaml)", "nested too deeply", "flatten the recipe") from None
    finally:
        loader.dispose()


def _expanded_size(node, where: str, sizes: dict) -> int:
    """Nodes in the document once every alias is expanded; checks each mapping's keys once (memo by node)."""
    if id(node) in sizes:
        if sizes[id(node)] is None:
            raise YamlProblem(where or "(top level)", "an alias refers to a mapping or list that contains it",
                              "replace the recursive alias with a copy")
        return sizes[id(node)]
    sizes[id(node)] = None  # in progress: seeing it again below means a recursive alias
    size = 1
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            inner = f"{where}.{name}" if where else str(name)
            if name is not None and key.tag != _MERGE:
                if name in seen:
                    raise YamlProblem(inner, f"duplicate key (lines {seen[name]} and {key.start_mark.line + 1}; "
                                             f"YAML would keep only the last)", "delete one of them")
                seen[name] = key.start_mark.line + 1
            size += _expanded_size(key, inner, sizes) + _expanded_size(value, inner, sizes)
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, f"{where}[{i}]", sizes) for i, item in enumerate(node.value))
    if size > MAX_NODES:
        raise YamlProblem(where or "(top level)", f"expands to more than {MAX_NODES:,} values through aliases",
                          "use fewer nested aliases (&name / *name)")
    sizes[id(node)] = size
    return size
