"""The five layers, read from the source: a lower layer never imports a higher one, and no two modules
import each other in a circle (at any depth, function-level imports included). CI also runs import-linter."""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ["zoo", "datasets", "trainers", "checkpoints", "experiments", "sklearn"]  # bottom to top
FOLDERS = {"sklearn": "sklearn_api"}  # the package flaxzoo.sklearn lives in sklearn_api/ (no shadowing)


def module_graph() -> dict[str, set[str]]:
  """`{module: flaxzoo modules it imports}` for every .py file of the five folders."""
  files = {}
  for package in LAYERS:
    folder = REPO / FOLDERS.get(package, package)
    for path in folder.rglob("*.py"):
      parts = [package, *path.relative_to(folder).with_suffix("").parts]
      if parts[-1] == "__init__":
        parts = parts[:-1]
      files["flaxzoo." + ".".join(parts)] = path
  graph = {}
  for module, path in files.items():
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # `from package import submodule` imports the submodule (as import-linter reads it)
        names = [f"{node.module}.{alias.name}" for alias in node.names]
      else:
        continue
      for name in names:
        while name and name not in files:
          name = name.rpartition(".")[0]
        if name and name != module:
          imported.add(name)
    graph[module] = imported
  return graph


def layer(module: str) -> int:
  return LAYERS.index(module.split(".")[1])


def test_no_module_imports_a_higher_layer():
  upward = [(a, b) for a, targets in module_graph().items() for b in targets if layer(b) > layer(a)]
  assert upward == []


def test_no_import_circle_between_any_two_modules():
  graph = module_graph()
  index, low, stack, on_stack, cycles = {}, {}, [], set(), []

  def visit(v):  # Tarjan's strongly connected components
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = set()
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.add(w)
        if w == v:
          break
      if len(component) > 1:
        cycles.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  assert cycles == []


def test_the_graph_is_read():  # the checks above are not vacuous
  graph = module_graph()
  assert "flaxzoo.trainers.trainer" in graph["flaxzoo.experiments.build"]
  assert "flaxzoo.zoo.registry" in graph["flaxzoo.zoo.models"]
  assert len(graph) > 50
