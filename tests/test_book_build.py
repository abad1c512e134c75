"""The book build's guard against nbclient's widget stall (jupyter/nbclient#312)."""

import importlib.util
import types
from pathlib import Path

import yaml
from nbclient import output_widget

ROOT = Path(__file__).resolve().parents[1]


def _load_extension():
    path = ROOT / "book" / "_ext" / "no_widget_sync.py"
    spec = importlib.util.spec_from_file_location("no_widget_sync", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _widget(sent):
    """nbclient's Output widget mimic with a kernel client that records what it sends."""
    session = types.SimpleNamespace(msg=lambda msg_type, **kw: {"msg_type": msg_type, **kw})
    channel = types.SimpleNamespace(send=sent.append)
    client = types.SimpleNamespace(session=session, shell_channel=channel)
    widget = output_widget.OutputWidget("c1", {"outputs": []}, client, executor=None)
    widget.parent_header = {}
    return widget


def test_the_book_build_loads_the_extension():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    folder = config["sphinx"]["local_extensions"]["no_widget_sync"]
    assert (ROOT / folder / "no_widget_sync.py").is_file()


def test_output_widgets_stop_messaging_the_kernel_on_the_shell_channel(monkeypatch):
    monkeypatch.setattr(
        output_widget.OutputWidget, "sync_state", output_widget.OutputWidget.sync_state
    )
    sent = []
    _widget(sent).sync_state()
    # nbclient's own method sends the outputs back on the shell channel: the cause of the stall.
    # (If this fails, nbclient changed and the extension may no longer be needed.)
    assert [m["msg_type"] for m in sent] == ["comm_msg"]

    sent.clear()
    assert _load_extension().setup(app=None)["parallel_read_safe"]
    widget = _widget(sent)
    widget.clear_output([], {"parent_header": {}, "content": {}}, 0)
    widget.sync_state()
    assert sent == [] and widget.outputs == []
