"""The bundled reference model (XGBoost trained on synthetic reports); see MODEL_CARD.md here."""

from pathlib import Path

REFERENCE_MODEL_DIR: Path = Path(__file__).parent
