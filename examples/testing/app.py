"""A small application with jobs, for ``test_app.py`` to test. The two dicts stand in for the
application's database and mail server.

``signup(email)`` stores a user and enqueues ``WelcomeMail``; the welcome mail, once sent,
schedules a ``FollowUp`` three days later.
"""

from __future__ import annotations

import kiqpy

USERS: dict[int, str] = {}
OUTBOX: list[tuple[str, str]] = []  # (to, subject) of every mail sent

FOLLOW_UP_DAYS = 3


def signup(email: str) -> int:
    """Create a user; the welcome mail goes out in the background."""
    user_id = len(USERS) + 1
    USERS[user_id] = email
    WelcomeMail.perform_async(user_id)  # an id, not the user: the job reads fresh data
    return user_id


class WelcomeMail(kiqpy.Worker, queue="mail", retry=5):
    def perform(self, user_id: int) -> None:
        OUTBOX.append((USERS[user_id], "Welcome!"))
        FollowUp.perform_in(FOLLOW_UP_DAYS * 24 * 3600, user_id, FOLLOW_UP_DAYS)


class FollowUp(kiqpy.Worker, queue="mail"):
    def perform(self, user_id: int, days: int) -> None:
        OUTBOX.append((USERS[user_id], f"How were your first {days} days?"))
