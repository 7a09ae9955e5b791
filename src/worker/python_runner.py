"""
Runs one Python automation for automations-worker, as

    python3 -I python_runner.py main.py

with the run's payload on stdin: {"seed": ..., "input": [...], "context": {}}.

The code may mark one function with @core_task (or @core_task(), the
Datallog convention), available as a builtin and from the modules
"datallog" and "automations". That function is called with the seed, plus
the input rows and the context when it takes them (by the parameter names
"seed", "input" and "context", otherwise by position in that order), and
its return value is the output. Without one, the output is the module's
"output" variable, or null.

Only the output reaches the real stdout, as JSON: print() and anything else
written to stdout, by the code or by its subprocesses, goes to stderr, the
run's log. An exception prints its traceback and exits with status 1, so the
last line of the log names it.
"""

import builtins
import inspect
import json
import os
import sys
import traceback
import types

# this file's name in tracebacks, also when the warm parent compiled it
RUNNER = sys._getframe().f_code.co_filename
TASKS = []


def core_task(fn=None, **options):
    """@core_task or @core_task(...): the automation's entry point."""

    def mark(f):
        if not callable(f):
            raise TypeError("@core_task decorates a function")
        TASKS.append(f)
        return f

    return mark if fn is None else mark(fn)


def progress(fraction, message=""):
    """Tells how far the run is: fraction from 0 to 1, and a short message.

    The worker reads the last one from the file .progress of the run's
    folder (sh automations write "FRACTION MESSAGE" there themselves).
    """
    fraction = float(fraction)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("progress: fraction must be from 0 to 1")
    line = "%g %s\n" % (fraction, " ".join(str(message).split()))
    # HOME is the run's folder, whether this runner came from it or warm
    folder = os.environ.get("HOME") or os.path.dirname(RUNNER)
    tmp = os.path.join(folder, ".progress.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(line)
    os.replace(tmp, os.path.join(folder, ".progress"))


def install_core_task():
    builtins.core_task = core_task
    builtins.progress = progress
    for name in ("datallog", "automations"):
        module = types.ModuleType(name)
        module.core_task = core_task
        module.progress = progress
        sys.modules[name] = module


def read_payload():
    data = sys.stdin.buffer.read()
    payload = json.loads(data) if data.strip() else {}
    if not isinstance(payload, dict):
        raise TypeError("the run's payload is not a JSON object")
    return payload


def run_code(path):
    """Executes the code file as the __main__ module."""
    with open(path, "rb") as f:
        source = f.read()
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    sys.argv = [path]
    exec(compile(source, path, "exec"), module.__dict__)
    return module


# the kinds of parameters call_task fills (*args and **kwargs it leaves)
POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD, KEYWORD_ONLY = range(3)


def parameters(fn):
    """fn's parameters but *args and **kwargs: (name, kind), in order.

    A plain function's come from its code object, as inspect.signature
    would give them, without building a Signature (which, in a run forked
    by the warm parent, copies pages of the parent's memory); anything else
    (a decorated function, a class, a partial) goes through
    inspect.signature.
    """
    if (type(fn) is types.FunctionType and not hasattr(fn, "__wrapped__")
            and not hasattr(fn, "__signature__")):
        code = fn.__code__
        names, posonly = code.co_varnames, code.co_posonlyargcount
        n, kwonly = code.co_argcount, code.co_kwonlyargcount
        return ([(name, POSITIONAL_ONLY) for name in names[:posonly]]
                + [(name, POSITIONAL_OR_KEYWORD) for name in names[posonly:n]]
                + [(name, KEYWORD_ONLY) for name in names[n:n + kwonly]])

    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD: POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY: KEYWORD_ONLY,
    }
    return [(p.name, kinds[p.kind])
            for p in inspect.signature(fn).parameters.values()
            if p.kind in kinds]


def call_task(fn, payload):
    """Calls fn with the seed, and the input and context when it takes them."""
    values = {
        "seed": payload.get("seed"),
        "input": payload.get("input"),
        "context": payload.get("context") or {},
    }
    try:
        params = parameters(fn)
    except (TypeError, ValueError):
        return fn(values["seed"])

    named = {name for name, kind in params
             if name in values and kind != POSITIONAL_ONLY}
    unnamed = [name for name in values if name not in named]
    args, kwargs = [], {}

    for name, kind in params:
        if kind != POSITIONAL_ONLY and name in named:
            kwargs[name] = values[name]
        elif kind != KEYWORD_ONLY:
            if not unnamed:
                break
            value = values[unnamed.pop(0)]
            if kind == POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[name] = value

    result = fn(*args, **kwargs)
    if inspect.iscoroutine(result):
        import asyncio
        result = asyncio.run(result)
    return result


def print_exception(exc):
    """The traceback without the runner's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == RUNNER:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def finish(status, out_fd=None, text=None):
    if text is not None:
        data = (text + "\n").encode()
        while data:
            data = data[os.write(out_fd, data):]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    # threads the code left running do not hold the result back
    os._exit(status)


def main():
    sys.dont_write_bytecode = True

    # the output gets a private descriptor; fd 1 and sys.stdout become stderr
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    try:
        payload = read_payload()
        install_core_task()
        module = run_code(sys.argv[1])
        if len(TASKS) > 1:
            names = ", ".join(f.__name__ for f in TASKS)
            raise TypeError(f"more than one @core_task function: {names}")
        if TASKS:
            result = call_task(TASKS[0], payload)
        else:
            result = getattr(module, "output", None)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            finish(e.code or 0)
        print(e.code, file=sys.stderr)
        finish(1)
    except BaseException as e:
        print_exception(e)
        finish(1)

    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as e:
        print(f"{type(e).__name__}: the output is not JSON: {e}",
              file=sys.stderr)
        finish(1)

    finish(0, out_fd, text)


# the warm parent (python_warm.py) imports this file and calls main() in
# each run's child
if __name__ == "__main__":
    main()
