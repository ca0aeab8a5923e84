"""``topodiff models list|show``: the built-in tight-binding models."""
from __future__ import annotations

from typing import Optional

import typer

from topodiff.commands._common import parse_params, print_json

models_app = typer.Typer(help="Built-in tight-binding models: list them, show one (as topodiff-tb/1 JSON).",
                         no_args_is_help=True)


@models_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout")) -> None:
    """Names, summaries and default parameters of the built-in models."""
    from topodiff.physics.library import list_models, model_info

    infos = [model_info(n) for n in list_models()]
    if as_json:
        print_json({"models": [{"name": i["name"], "summary": i["summary"],
                                "params": {k: v["default"] for k, v in i["params"].items()}} for i in infos]})
        return
    for i in infos:
        params = ", ".join(f"{k}={v['default']:g}" for k, v in i["params"].items())
        print(f"{i['name']:<14} {i['summary']}  [{params}]")


@models_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="built-in model name (see `topodiff models list`)"),
    param: Optional[list[str]] = typer.Option(None, "--param", help="parameter KEY=VALUE (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print the model as a topodiff-tb/1 document"),
) -> None:
    """Show a built-in model: its documentation and parameters, or (--json) its topodiff-tb/1 document."""
    from topodiff.physics.library import build_model, model_info

    model = build_model(name, **parse_params(param))
    if as_json:
        print_json(model.to_dict())
        return
    info = model_info(name)
    print(f"{info['name']}: {info['summary']}\n")
    print(info["doc"])
    print("\nparameters:")
    for k, v in info["params"].items():
        print(f"  {k:<10} = {model.params[k]:<10g} {v['description']} (default {v['default']:g})")
    print(f"\ndim {model.dim}, {model.num_bands} bands, filling {model.occupied}, {len(model.hop_i)} hoppings")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
