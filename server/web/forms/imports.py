"""The CSV import upload form: which kind of rows, and the file.

The file's content is judged by :mod:`server.web.csv_import` (encoding, header, every row); a refusal of
the whole file (not UTF-8/GB18030, no header) is put next to the file field, row problems go to the
dry-run table. Unit files are an admin's: the import's plan says so (its one check of the role).
"""

from __future__ import annotations

import logging
from typing import Any

from flask_wtf.file import FileField, FileRequired

from ..csv_import import KINDS
from .base import Msg, StaffForm, TrimmedStringField, check

logger = logging.getLogger(__name__)


class ImportForm(StaffForm):
    kind = TrimmedStringField(default="members")
    file = FileField(validators=[FileRequired(message=Msg("import.no_file"))])

    def validate_kind(self, field: Any) -> None:
        check(field.data in KINDS, Msg("import.bad_kind"))
