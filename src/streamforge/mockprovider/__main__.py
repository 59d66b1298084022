"""``python -m streamforge.mockprovider serve …``: the ``streamforge mock-provider`` commands."""

from streamforge.mockprovider.cli import app

if __name__ == "__main__":
    app(prog_name="streamforge-mock-provider")
