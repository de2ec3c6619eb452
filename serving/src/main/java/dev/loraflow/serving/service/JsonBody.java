package dev.loraflow.serving.service;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A record that a resource takes as its request's JSON body, bound after the checks every body gets
 * ({@link Requests#jsonObject}): see {@link Requests#bind(com.fasterxml.jackson.databind.JsonNode, Class)}. A value of another JSON type than its
 * component's is refused naming the field; the record's constructor (or factory) checks the rest and throws
 * {@link ApiError}.
 */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.TYPE)
public @interface JsonBody {}
