"""Login example: XSRF-protected form, secure-cookie user, @authenticated pages, safe ``next``."""
