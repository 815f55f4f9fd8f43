from mlpcli.cli import app

app(prog_name="mlp")
