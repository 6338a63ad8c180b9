"""Reads about members for staff: the invite tree (who invited whom)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.models import User

# What the change page shows: enough to see a branch, bounded so a huge branch stays cheap.
TREE_DEPTH = 6
TREE_NODES = 300
TREE_ANCESTORS = 20
# What a branch action covers: the whole branch up to these bounds (reported when cut).
BRANCH_DEPTH = 64
BRANCH_SIZE = 10_000


@dataclass(frozen=True)
class TreeNode:
    id: int
    username: str
    role: str | None
    is_active: bool
    can_invite: bool
    date_joined: datetime
    depth: int = 0
    children: list[TreeNode] = field(default_factory=list)


@dataclass(frozen=True)
class InviteTree:
    root: TreeNode
    # The chain of inviters, nearest first (root's inviter, their inviter, ...).
    ancestors: list[TreeNode]
    # The root's descendants in display order (depth-first, depth from 1).
    descendants: list[TreeNode]
    truncated: bool

    @property
    def size(self) -> int:
        return len(self.descendants)


@dataclass(frozen=True)
class BranchIds:
    ids: list[int]
    truncated: bool


_FIELDS = ("id", "username", "role__name", "is_active", "can_invite", "date_joined",
           "invited_by_id")


def _node(row: dict[str, Any], depth: int) -> TreeNode:
    return TreeNode(id=row["id"], username=row["username"],
                    role=row["role__name"], is_active=row["is_active"],
                    can_invite=row["can_invite"], date_joined=row["date_joined"],
                    depth=depth)


def _levels(root_id: int, *, max_depth: int, max_size: int,
            fields: tuple[str, ...]) -> tuple[list[list[dict[str, Any]]], bool]:
    """Breadth-first, one query per level (invited_by is indexed), at most max_size rows."""
    levels: list[list[dict[str, Any]]] = []
    frontier = [root_id]
    seen = {root_id}
    total = 0
    truncated = False
    for _ in range(max_depth):
        if not frontier:
            break
        room = max_size - total
        rows = [
            row for row in User.objects.filter(invited_by_id__in=frontier)
            .order_by("date_joined", "id").values(*fields)[: room + 1]
            if row["id"] not in seen  # a corrupted cycle must not loop
        ]
        if len(rows) > room:
            rows, truncated = rows[:room], True
        if not rows:
            break
        seen.update(row["id"] for row in rows)
        levels.append(rows)
        total += len(rows)
        frontier = [row["id"] for row in rows]
        if truncated:
            break
    else:
        truncated = bool(frontier) and User.objects.filter(invited_by_id__in=frontier).exists()
    return levels, truncated


def invite_tree(*, user_id: int, max_depth: int = TREE_DEPTH,
                max_nodes: int = TREE_NODES) -> InviteTree:
    """Who invited the user (up the chain) and whom they invited, down the branch.

    One query per level in each direction, bounded by depth and size.
    """
    root_row = User.objects.filter(pk=user_id).values(*_FIELDS).get()
    root = _node(root_row, 0)

    ancestors: list[TreeNode] = []
    parent_id = root_row["invited_by_id"]
    seen = {user_id}
    while parent_id is not None and parent_id not in seen and len(ancestors) < TREE_ANCESTORS:
        seen.add(parent_id)
        row = User.objects.filter(pk=parent_id).values(*_FIELDS).first()
        if row is None:
            break
        ancestors.append(_node(row, -(len(ancestors) + 1)))
        parent_id = row["invited_by_id"]

    levels, truncated = _levels(user_id, max_depth=max_depth, max_size=max_nodes,
                                fields=_FIELDS)
    nodes: dict[int, TreeNode] = {user_id: root}
    for depth, rows in enumerate(levels, start=1):
        for row in rows:
            node = _node(row, depth)
            nodes[node.id] = node
            nodes[row["invited_by_id"]].children.append(node)

    ordered: list[TreeNode] = []

    def walk(node: TreeNode) -> None:
        for child in node.children:
            ordered.append(child)
            walk(child)

    walk(root)
    return InviteTree(root=root, ancestors=ancestors, descendants=ordered, truncated=truncated)


def invite_branch_ids(*, root_id: int, max_depth: int = BRANCH_DEPTH,
                      max_size: int = BRANCH_SIZE) -> BranchIds:
    """The member and everyone below them, for branch actions (bounded; `truncated` says so)."""
    levels, truncated = _levels(root_id, max_depth=max_depth, max_size=max_size,
                                fields=("id", "invited_by_id"))
    ids = [root_id] + [row["id"] for rows in levels for row in rows]
    return BranchIds(ids=ids, truncated=truncated)
