"""WTForms forms of the staff pages and the member phone page, one module per form family.

``base`` holds what every form shares (no CSRF of its own, messages from the catalogue, the person's
locale for WTForms' own texts, errors as plain strings); ``review``, ``members``, ``auth`` … hold the
forms of one family each. Views only build a form from ``request.form``, call ``validate()`` and act on
``form.data``; rules that are not about one form (a span's sense, a card UID's shape) stay in their
service modules and the forms call them.
"""
