"""The knowledge-graph API: search, a node's neighbourhood, and the read-only Cypher console."""
from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from kg_app import selectors
from kg_app.store import GraphStoreError, GraphUnavailable, get_graph_store
from trainer_app.api.permissions import IsSiteAdmin


class IsConsoleUser(IsSiteAdmin):
    message = "Only site admins can use the Cypher console: a query can read every project's nodes."


class GraphDown(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = ("The knowledge graph server is unreachable. The rest of Trainyard works; the graph "
                      "catches up when it is back.")
    default_code = "graph_unavailable"


def _with_store(read):
    with get_graph_store() as store:
        try:
            return read(store)
        except GraphUnavailable:
            raise GraphDown() from None


class SearchView(APIView):
    @extend_schema(parameters=[OpenApiParameter("q", str, required=True,
                                                description="a name (any part, any case), a node id or a label")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = request.query_params.get("q", "").strip()
        if not query:
            raise ValidationError({"q": "Give ?q=<text>: part of a name, a node id such as run:42, or a label."})
        nodes = _with_store(lambda store: selectors.graph_search(store=store, user=request.user, query=query[:200]))
        return Response({"nodes": nodes})


class NeighbourhoodView(APIView):
    @extend_schema(parameters=[OpenApiParameter("skip", int, description="neighbours already shown ('show more')"),
                               OpenApiParameter("limit", int, description=f"at most "
                                                f"{selectors.NEIGHBOURHOOD_LIMIT * 4}")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request, key: str):
        skip, limit = request.query_params.get("skip", "0"), request.query_params.get("limit",
                                                                                      str(selectors.NEIGHBOURHOOD_LIMIT))
        if not skip.isdigit():
            raise ValidationError({"skip": f"skip must be a whole number, not {skip!r}."})
        if not limit.isdigit() or not 1 <= int(limit) <= selectors.NEIGHBOURHOOD_LIMIT * 4:
            raise ValidationError({"limit": f"limit must be from 1 to {selectors.NEIGHBOURHOOD_LIMIT * 4}."})
        answer = _with_store(lambda store: selectors.graph_neighbourhood(
            store=store, user=request.user, key=key, skip=int(skip), limit=int(limit)))
        if answer is None:
            raise Http404
        return Response(answer)


class PathsView(APIView):
    """A node's lineage: what it was made from (upstream) and what was made from it (downstream)."""

    @extend_schema(parameters=[OpenApiParameter("node", str, required=True, description="a node id, e.g. run:42"),
                               OpenApiParameter("direction", str, enum=["upstream", "downstream", "both"]),
                               OpenApiParameter("depth", int, description=f"steps, 1 to {selectors.LINEAGE_DEPTH}")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        key = request.query_params.get("node", "")
        direction = request.query_params.get("direction", "both")
        depth = request.query_params.get("depth", str(selectors.LINEAGE_DEPTH))
        if not key:
            raise ValidationError({"node": "Give ?node=<id>, e.g. run:42 or checkpoint:7."})
        if direction not in ("upstream", "downstream", "both"):
            raise ValidationError({"direction": f"direction must be upstream, downstream or both, not {direction!r}."})
        if not depth.isdigit() or not 1 <= int(depth) <= selectors.LINEAGE_DEPTH:
            raise ValidationError({"depth": f"depth must be from 1 to {selectors.LINEAGE_DEPTH}."})
        answer = _with_store(lambda store: selectors.graph_lineage(store=store, user=request.user, key=key,
                                                                   direction=direction, depth=int(depth)))
        if answer is None:
            raise Http404
        return Response(answer)


class QuestionListView(APIView):
    @extend_schema(operation_id="kg_questions_list", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({"questions": [{"name": name, **question} for name, question in selectors.QUESTIONS.items()]})


class QuestionView(APIView):
    """A ready-made question, answered over the user's projects only."""

    @extend_schema(parameters=[OpenApiParameter("node", str, description="the node the question is about"),
                               OpenApiParameter("metric", str, description="a final metric, e.g. val_accuracy"),
                               OpenApiParameter("top", int, description="how many best runs (1 to 100)")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request, name: str):
        params = request.query_params
        top = params.get("top", "10")
        if not top.isdigit() or not 1 <= int(top) <= 100:
            raise ValidationError({"top": "top must be from 1 to 100."})

        def ask(store):
            try:
                return selectors.graph_question(store=store, user=request.user, name=name, node=params.get("node", ""),
                                                metric=params.get("metric", "val_accuracy"), top=int(top))
            except ValueError as exc:
                raise ValidationError({"detail": [str(exc)]}) from None

        answer = _with_store(ask)
        if answer is None:
            raise Http404
        return Response(answer)


class QueryInput(serializers.Serializer):
    cypher = serializers.CharField(max_length=20_000, trim_whitespace=True)
    params = serializers.DictField(required=False, default=dict)


class QueryView(APIView):
    """Site admins only: a Cypher statement can read any project's nodes, so it cannot be offered to
    project members without leaking other projects."""

    permission_classes = [IsConsoleUser]

    @extend_schema(request=QueryInput, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = QueryInput(data=request.data)
        data.is_valid(raise_exception=True)

        def read(store):
            try:
                return selectors.graph_query(store=store, statement=data.validated_data["cypher"],
                                             params=data.validated_data["params"])
            except selectors.QueryRefused as exc:
                raise ValidationError({"cypher": [str(exc)]}) from None
            except GraphUnavailable:
                raise
            except GraphStoreError as exc:
                raise ValidationError({"cypher": [f"The graph refused this statement: {exc}"]}) from None

        return Response(_with_store(read))
