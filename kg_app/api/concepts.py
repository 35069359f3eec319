"""The concepts API: every concept with its explanation and page, for anyone signed in; site admins may
rewrite an explanation (PATCH). Texts are plain: they come back exactly as stored."""
from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from kg_app import concepts, services
from kg_app.explanations import PARTS


class ExplanationSerializer(serializers.Serializer):
    what = serializers.CharField(help_text="what it is")
    when = serializers.CharField(help_text="when to use it")
    typical = serializers.CharField(help_text="typical values")
    pitfalls = serializers.CharField(help_text="common pitfalls")


class ConceptOutput(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    is_a = serializers.ListField(child=serializers.CharField(), help_text="slugs of the broader concepts")
    narrower = serializers.ListField(child=serializers.CharField(), help_text="slugs of the narrower concepts")
    requires = serializers.ListField(child=serializers.CharField())
    builtin = serializers.BooleanField(help_text="false for a concept an admin added")
    explanation = ExplanationSerializer()
    edited = serializers.BooleanField(help_text="an admin rewrote part of the explanation")
    updated_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)
    url = serializers.CharField(help_text="the concept's page")


class ExplanationInput(serializers.Serializer):
    """Any of the four parts; an empty one falls back to the built-in text."""

    what = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 max_length=services.EXPLANATION_MAX_CHARS)
    when = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 max_length=services.EXPLANATION_MAX_CHARS)
    typical = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                    max_length=services.EXPLANATION_MAX_CHARS)
    pitfalls = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                     max_length=services.EXPLANATION_MAX_CHARS)


class ConceptListView(APIView):
    @extend_schema(operation_id="concepts_list", responses=ConceptOutput(many=True))
    def get(self, request):
        return Response(ConceptOutput(concepts.concept_list(), many=True).data)


class ConceptDetailView(APIView):
    @extend_schema(responses=ConceptOutput)
    def get(self, request, slug: str):
        return Response(ConceptOutput(_concept_or_404(slug)).data)

    @extend_schema(request=ExplanationInput, responses=ConceptOutput)
    def patch(self, request, slug: str):
        _concept_or_404(slug)
        data = ExplanationInput(data=request.data)
        data.is_valid(raise_exception=True)
        if not data.validated_data:
            raise ValidationError({"detail": [f"Send at least one of {', '.join(PARTS)}."]})
        services.concept_explanation_update(slug=slug, actor=request.user, texts=dict(data.validated_data))
        return Response(ConceptOutput(concepts.concept_get(slug)).data)


def _concept_or_404(slug: str) -> dict:
    concept = concepts.concept_get(slug)
    if concept is None:
        raise Http404
    return concept
